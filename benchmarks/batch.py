"""Batch throughput: a folder of clips through `run-graph GRAPH --source DIR --output-dir OUT`, with 1 and 2 local
jobs (and, with --ray, through a Ray cluster), against running `run-graph` on the files one after another.

    python benchmarks/batch.py [--graph face_detect] [--files 8] [--rounds 3] [--ray auto]

The folder: `--files` copies of assets/media/astronaut_pan.mp4 (320x240, 90 frames, a face). Every row writes
the annotated video and the detections of every file. Reported: wall seconds (median of `rounds`), files per
minute, speed-up over one after another, and scaling efficiency (speed-up over the batch with 1 job, divided
by the number of jobs), and the cores the processes kept busy (CPU seconds over wall seconds; Ray's own
processes are not counted). Goal: 2 jobs on 2 cores >= 1.6x one job for graphs that leave a core idle; Ray within
10% of local jobs at the same parallelism. Processes start, import and validate inside the timings (a
user's wall clock).
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "assets" / "media" / "astronaut_pan.mp4"


def run(command: list[str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(command)}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - started


def one_after_another(graph: str, src: Path, out: Path, sets: list[str]) -> float:
    started = time.perf_counter()
    for clip in sorted(src.iterdir()):
        run([sys.executable, "-m", "pipelines", graph, "--source", str(clip), "--no-display", "--no-progress",
             "--quiet", "--output", str(out / f"{clip.stem}.mp4"), "--detections", str(out / f"{clip.stem}.jsonl"),
             *sets])
    return time.perf_counter() - started


def batch(graph: str, src: Path, out: Path, sets: list[str], *extra: str) -> float:
    return run([sys.executable, "-m", "pipelines", graph, "--source", str(src), "--output-dir", str(out),
                "--no-progress", "--quiet", *sets, *extra])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--graph", default="face_detect")
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--ray", metavar="ADDRESS", help="also run through this Ray cluster (auto, ray://host:10001)")
    p.add_argument("--ray-jobs", type=int, default=2, help="files at once on Ray (default 2)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.OPTION=VALUE",
                   help="passed to every run, e.g. face_detection/inference.threads=1")
    args = p.parse_args()
    sets = [f"--set={o}" for o in args.overrides]
    work = Path(tempfile.mkdtemp(prefix="framegraph-batch-bench-"))
    src = work / "in"
    src.mkdir()
    for i in range(args.files):
        shutil.copy(CLIP, src / f"clip{i:02d}.mp4")
    rows = {"one after another": lambda out: one_after_another(args.graph, src, out, sets),
            "--jobs 1": lambda out: batch(args.graph, src, out, sets, "--jobs", "1"),
            "--jobs 2": lambda out: batch(args.graph, src, out, sets, "--jobs", "2")}
    if args.ray:
        rows[f"--ray {args.ray} --jobs {args.ray_jobs}"] = lambda out: batch(
            args.graph, src, out, sets, "--ray", args.ray, "--jobs", str(args.ray_jobs))
    times: dict[str, float] = {}
    cpu: dict[str, float] = {}  # cores kept busy (CPU seconds of the processes over wall seconds)
    try:
        for name, fn in rows.items():
            samples, busy = [], []
            for r in range(args.rounds):
                out = work / f"out-{len(times)}-{r}"  # a fresh folder: nothing skipped
                out.mkdir()
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                samples.append(fn(out))
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                busy.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / samples[-1])
                shutil.rmtree(out)
            times[name] = statistics.median(samples)
            cpu[name] = statistics.median(busy)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cores = len(os.sched_getaffinity(0))
    print(f"{args.files} x {CLIP.name} (90 frames, 320x240), graph {args.graph}, {cores} cores, "
          f"median of {args.rounds}" + (f", {' '.join(sets)}" if sets else "") + "\n")
    print("| run | seconds | files/min | vs one after another | scaling efficiency | cores busy |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    base, one_job = times["one after another"], times["--jobs 1"]
    for name, seconds in times.items():
        jobs = 2 if "--jobs 2" in name else 1
        eff = f"{one_job / seconds / jobs:.0%}" if name != "one after another" else ""
        print(f"| {name} | {seconds:.1f} | {args.files * 60 / seconds:.1f} | {base / seconds:.2f}x | {eff} | {cpu[name]:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
