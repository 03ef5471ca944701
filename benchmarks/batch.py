"""Batch throughput: a folder of clips through `run-graph GRAPH --source DIR --output-dir OUT`, with 1 and 2 local
jobs (and, with --ray, through a Ray cluster), against running `run-graph` on the files one after another.

    python benchmarks/batch.py [--graph face_detect] [--files 8] [--loops 1] [--rounds 3] [--detections-only]
                               [--ray auto | --start-ray-cluster]

The folder: `--files` clips, each assets/media/astronaut_pan.mp4 (320x240, 90 frames, a face) played `--loops`
times. Every row writes the annotated video and the detections of every file (`--detections-only`: the
detections alone, a graph that leaves a core idle: decoding and one inference thread, no encoder). Reported: wall seconds (median of `rounds`), files per
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


def make_clip(path: Path, loops: int) -> None:
    """astronaut_pan.mp4 played `loops` times, re-encoded once (the benchmark's input, not what it measures)."""
    import av

    with av.open(str(CLIP)) as src:
        frames = [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for _ in range(loops):
            for image in frames:
                out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode(None))


def one_after_another(graph: str, src: Path, out: Path, sets: list[str], video: bool) -> float:
    started = time.perf_counter()
    for clip in sorted(src.iterdir()):
        written = ["--output", str(out / f"{clip.stem}.mp4")] if video else []
        run([sys.executable, "-m", "pipelines", graph, "--source", str(clip), "--no-display", "--no-progress",
             "--quiet", *written, "--detections", str(out / f"{clip.stem}.jsonl"), *sets])
    return time.perf_counter() - started


def batch(graph: str, src: Path, out: Path, sets: list[str], video: bool, *extra: str) -> float:
    names = [] if video else ["--detections", "{stem}.jsonl"]  # only these outputs
    return run([sys.executable, "-m", "pipelines", graph, "--source", str(src), "--output-dir", str(out),
                "--no-progress", "--quiet", *names, *sets, *extra])


def start_ray_cluster(port: int = 6391, worker_niceness: int = 0):
    """Two Ray nodes on this machine (``ray start``, one CPU each, token authentication, workers at
    `worker_niceness`); returns the address and a function that stops them. On a machine whose Ray would take the
    network interface's address, run the benchmark inside a network namespace with only loopback
    (docs/benchmarks.md)."""
    import secrets

    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16), RAY_USAGE_STATS_ENABLED="0",
                      RAY_worker_niceness=str(worker_niceness))
    temp = tempfile.mkdtemp(prefix="fgray", dir="/tmp")  # short: Ray's socket paths live under it
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    address = f"127.0.0.1:{port}"

    def stop() -> None:
        subprocess.run(["ray", "stop", "--force"], capture_output=True, timeout=60)
        shutil.rmtree(temp, ignore_errors=True)

    try:
        for extra in (["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}"],
                      [f"--address={address}"]):
            subprocess.run(["ray", "start", *extra, *common], check=True, capture_output=True, timeout=120)
    except BaseException:
        stop()
        raise
    return address, stop


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--graph", default="face_detect")
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--loops", type=int, default=1, help="each file is the sample clip this many times over")
    p.add_argument("--detections-only", action="store_true", help="write the detections only (no video encoder)")
    p.add_argument("--threads", type=int, help="run-graph --threads N in every run (nodes share N threads)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--ray", metavar="ADDRESS", help="also run through this Ray cluster (auto, ray://host:10001)")
    p.add_argument("--ray-jobs", type=int, default=2, help="files at once on Ray (default 2)")
    p.add_argument("--start-ray-cluster", action="store_true",
                   help="start a 2-node Ray cluster here (ray start, one CPU per node) and run through it too")
    p.add_argument("--ray-worker-niceness", type=int, default=0,
                   help="the started cluster's worker niceness (RAY_worker_niceness; Ray's own default is 15, which "
                        "puts the files below Ray's agents and the driver)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.OPTION=VALUE",
                   help="passed to every run, e.g. face_detection/inference.threads=1")
    args = p.parse_args()
    stop_cluster = None
    if args.start_ray_cluster:
        args.ray, stop_cluster = start_ray_cluster(worker_niceness=args.ray_worker_niceness)
    try:
        return measure(args)
    finally:
        if stop_cluster is not None:
            stop_cluster()


def measure(args) -> int:
    sets = [f"--set={o}" for o in args.overrides] + ([f"--threads={args.threads}"] if args.threads else [])
    work = Path(tempfile.mkdtemp(prefix="framegraph-batch-bench-"))
    src = work / "in"
    src.mkdir()
    if args.loops > 1:
        make_clip(work / "clip.mp4", args.loops)
    for i in range(args.files):
        shutil.copy(work / "clip.mp4" if args.loops > 1 else CLIP, src / f"clip{i:02d}.mp4")
    video = not args.detections_only
    rows = {"one after another": lambda out: one_after_another(args.graph, src, out, sets, video),
            "--jobs 1": lambda out: batch(args.graph, src, out, sets, video, "--jobs", "1"),
            "--jobs 2": lambda out: batch(args.graph, src, out, sets, video, "--jobs", "2")}
    if args.ray:
        rows[f"--ray {args.ray} --jobs {args.ray_jobs}"] = lambda out: batch(
            args.graph, src, out, sets, video, "--ray", args.ray, "--jobs", str(args.ray_jobs))
    samples: dict[str, list[float]] = {name: [] for name in rows}
    busy: dict[str, list[float]] = {name: [] for name in rows}  # cores kept busy: CPU seconds over wall seconds
    try:
        for r in range(args.rounds):  # rows interleaved round by round, so a slow spell hits them all alike
            for i, (name, fn) in enumerate(rows.items()):
                out = work / f"out-{i}-{r}"  # a fresh folder: nothing skipped
                out.mkdir()
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                samples[name].append(fn(out))
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                busy[name].append(cpu_s / samples[name][-1])
                shutil.rmtree(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    times = {name: statistics.median(s) for name, s in samples.items()}
    cpu = {name: statistics.median(b) for name, b in busy.items()}
    spread = max((max(s) - min(s)) / min(s) for s in samples.values())
    cores = len(os.sched_getaffinity(0))
    print(f"{args.files} x {CLIP.name} x {args.loops} ({90 * args.loops} frames, 320x240), graph {args.graph}, "
          f"{'detections only' if args.detections_only else 'video and detections'}, {cores} cores, "
          f"median of {args.rounds} interleaved rounds (largest spread {spread:.0%})"
          + (f", {' '.join(sets)}" if sets else "") + "\n")
    print("| run | seconds | files/min | vs one after another | scaling efficiency | cores busy |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    base, one_job = times["one after another"], times["--jobs 1"]
    for name, seconds in times.items():
        jobs = int(name.rpartition("--jobs ")[2] or 1) if "--jobs" in name else 1
        eff = f"{one_job / seconds / jobs:.0%}" if name != "one after another" else ""
        print(f"| {name} | {seconds:.1f} | {args.files * 60 / seconds:.1f} | {base / seconds:.2f}x | {eff} | {cpu[name]:.2f} |")
    if args.ray:
        ray_name = next(n for n in times if n.startswith("--ray"))
        local = times.get(f"--jobs {args.ray_jobs}")
        if local:
            print(f"\nRay vs local jobs at the same parallelism: {local / times[ray_name]:.2f}x "
                  f"(goal: within 10%, >= 0.91x)")
    print(f"2 jobs vs 1 job: {one_job / times['--jobs 2']:.2f}x (goal for a graph that leaves a core idle: >= 1.6x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
