"""Several streams in one process against as many separate processes: throughput, memory and live latency.

N streams (``--streams``, default 1 2 4 8) of a 640x360 clip through graphs/face_detect.yaml, run two ways in the
same run:

* one process: ``run-graph graphs/face_detect.yaml --source s0=CLIP --source s1=CLIP ... --no-display
  --no-progress -q --detections 'OUT/{stream}.jsonl'`` (multistream: a graph instance per stream, one shared
  inference session, no batching: the default); also with ``--set face_detection.max_batch=8 --set
  face_detection.batch_timeout_ms=0`` (frames of several streams that meet at the session run as one call,
  nobody waiting for a batch to fill);
* separate processes: N ``run-graph graphs/face_detect.yaml --source CLIP ... --detections OUT/sK.jsonl``
  started at once.

Workload: the detections JSON lines only (a headless box watching cameras); ``--video`` also writes each
stream's annotated H.264 (``--output 'OUT/{stream}.mp4'``). The clip is assets/media/astronaut_pan.mp4 (320x240,
25 fps, 90 frames) scaled to 480x360 and padded to 640x360 (black sides), looped to ``--frames`` frames and
encoded once to H.264 at 30 fps in a temp dir (libx264, crf 18, one encoder thread: the same bytes every run).

Measured, per N (medians over ``--rounds``, which alternate which way goes first; min-max spread when > 1):

* frames/s: all streams' frames (N x ``--frames``, checked against the lines written) over the wall seconds from
  starting the process(es) to the last one's exit; process start, imports and model loading are inside, as on
  a user's clock;
* peak RSS: every ~50 ms, VmHWM (the kernel's peak RSS of a process, /proc/PID/status) of each run-graph
  process and of its descendants, if any, summed per process tree. One process: its peak; separate: the sum
  of the N peaks. (Not wait4's ru_maxrss: a child started by vfork+exec inherits the parent's peak.) RSS
  counts shared library pages in every process that maps them, as ``ps`` does;
* live latency: each stream paced at the clip's rate (``source.realtime``, as a camera), the first
  ``--live-frames`` frames; per frame, from the source emitting it (``input_video``) to the last sink's input
  receiving it (``face_detections`` for the detections writer; ``output_video`` too with ``--video``), through
  ``GraphHandle.observe``. One process: the graphs built as run-graph builds them for several streams, run in
  a `StreamSet` in this process; separate: N workers (``python benchmarks/streams.py --latency-worker ...``),
  each building its graph, then all started together. p50/p99 over every stream's frames, and the frames the
  flow limiter let through of those the sources emitted.

Goal (issue 10, item 6): at 4 streams one process beats separate processes in throughput (ratio > 1) and uses
at most half their memory (ratio <= 0.5).

    python benchmarks/streams.py [--streams 1 2 4 8] [--frames 900] [--live-frames 150] [--rounds 1] [--video]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GRAPH = ROOT / "graphs" / "face_detect.yaml"
SAMPLE = ROOT / "assets" / "media" / "astronaut_pan.mp4"
WIDTH, HEIGHT, RATE = 640, 360, 30
BATCHED = ["face_detection.max_batch=8", "face_detection.batch_timeout_ms=0"]
SAMPLE_EVERY_S = 0.05


# ---------------------------------------------------------------- the clip
def make_clip(path: Path, frames: int) -> None:
    """The sample scaled into 640x360 (aspect kept, black sides), looped to `frames` frames, H.264 at 30 fps."""
    import av
    import cv2

    with av.open(str(SAMPLE)) as src:
        images = [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]
    h, w = images[0].shape[:2]
    scale = min(WIDTH / w, HEIGHT / h)
    fit_w, fit_h = round(w * scale) // 2 * 2, round(h * scale) // 2 * 2
    left, top = (WIDTH - fit_w) // 2, (HEIGHT - fit_h) // 2
    padded = []
    for image in images:
        fitted = cv2.resize(image, (fit_w, fit_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        padded.append(cv2.copyMakeBorder(fitted, top, HEIGHT - fit_h - top, left, WIDTH - fit_w - left,
                                         cv2.BORDER_CONSTANT, value=(0, 0, 0)))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.options = {"preset": "veryfast", "crf": "18"}
        stream.codec_context.thread_count = 1  # one thread: deterministic output
        for i in range(frames):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(padded[i % len(padded)], format="rgb24")))
        out.mux(stream.encode(None))


# ---------------------------------------------------------------- memory
def _peak_rss_kb(pid: int) -> int:
    """VmHWM: the kernel's own peak RSS of the process (since its exec), in KiB; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    """Children of every thread of `pid` (a thread that forks is the child's parent)."""
    kids = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(k) for k in f.read().split()]
    except OSError:
        pass
    return kids


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += _children(found[-1])
    return found


class PeakRss:
    """Reads each root's process tree every ~50 ms on a thread: `peak_kb(root)` is the sum of the peak RSS of
    every process seen in it (exact for a process without children; an upper bound if children come and go)."""

    def __init__(self, pids: list[int]):
        self._hwm: dict[int, dict[int, int]] = {pid: {} for pid in pids}  # root -> pid -> peak RSS (KiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for root, seen in self._hwm.items():
                for pid in tree(root):
                    seen[pid] = max(seen.get(pid, 0), _peak_rss_kb(pid))
            self._stop.wait(SAMPLE_EVERY_S)

    def peak_kb(self, root: int) -> int:
        return sum(self._hwm[root].values())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_processes(commands: list[list[str]], logs: Path) -> tuple[float, list[int]]:
    """Start every command at once; wall seconds until the last exits, and each one's peak RSS (KiB)."""
    started = time.perf_counter()
    procs = []
    for i, command in enumerate(commands):
        with open(logs / f"stderr-{i}.txt", "w") as err:
            procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT))
    sampler = PeakRss([p.pid for p in procs])
    for proc in procs:  # in turn: the last wait returns when the last process ends
        proc.wait()
    wall = time.perf_counter() - started
    sampler.stop()
    for i, (proc, command) in enumerate(zip(procs, commands)):
        if proc.returncode != 0:
            tail = (logs / f"stderr-{i}.txt").read_text()[-2000:]
            raise SystemExit(f"failed ({proc.returncode}): {' '.join(command)}\n{tail}")
    return wall, [sampler.peak_kb(p.pid) for p in procs]


# ---------------------------------------------------------------- throughput and memory
def run_graph_command() -> list[str]:
    found = shutil.which("run-graph", path=str(Path(sys.executable).parent)) or shutil.which("run-graph")
    return [found] if found else [sys.executable, "-m", "pipelines"]


def one_process(clip: Path, n: int, out: Path, video: bool, sets: list[str]) -> list[list[str]]:
    # Named sources: run-graph's multistream path even for one stream, so 1 stream shows that path's own cost.
    sources = [a for i in range(n) for a in ("--source", f"s{i}={clip}")]
    outputs = ["--detections", str(out / "{stream}.jsonl")] + (["--output", str(out / "{stream}.mp4")] if video else [])
    return [[*run_graph_command(), str(GRAPH), *sources, "--no-display", "--no-progress", "-q", *outputs,
             *(f"--set={s}" for s in sets)]]


def separate(clip: Path, n: int, out: Path, video: bool) -> list[list[str]]:
    commands = []
    for i in range(n):
        outputs = ["--detections", str(out / f"s{i}.jsonl")] + (["--output", str(out / f"s{i}.mp4")] if video else [])
        commands.append([*run_graph_command(), str(GRAPH), "--source", str(clip), "--no-display", "--no-progress",
                         "-q", *outputs])
    return commands


def frames_written(out: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in out.glob("*.jsonl"))


# ---------------------------------------------------------------- live latency
def sink_streams(video: bool) -> list[str]:
    """The streams the enabled sinks read last: detections (detections writer), the drawn frame (video writer)."""
    return ["face_detections", "output_video"] if video else ["face_detections"]


def live_graph(clip: Path, name: str, frames: int, out: Path, video: bool, sets: list[str], several: bool):
    """The graph as run-graph builds one stream of several (source, outputs, stream name, threads), paced live."""
    from pipelines import Graph, load_graph
    from pipelines.multistream_cli import STREAM_THREADS

    overrides = [f"source.source={clip}", "source.realtime=true", f"source.max_frames={frames}",
                 "display.enabled=false", "detections_writer.enabled=true",
                 f"detections_writer.path={out / f'{name}.jsonl'}", f"detections_writer.stream_name={name}", *sets]
    if video:
        overrides += ["video_writer.enabled=true", f"video_writer.path={out / f'{name}.mp4'}"]
    config = load_graph(GRAPH, overrides=overrides)
    if several:  # as run-graph with several streams: a paced source keeps the split of threads (may_block)
        config.set_default_threads(STREAM_THREADS)
    return Graph(config)


class LatencyProbe:
    """Per frame: from the source emitting it to the last of the sink streams receiving it (seconds)."""

    def __init__(self, sinks: list[str]):
        self.sinks = sinks
        self.emitted: dict[int, float] = {}
        self.pending: dict[int, int] = {}  # timestamp -> sink streams not yet reached
        self.latencies: list[float] = []
        self._lock = threading.Lock()

    def attach(self, handle) -> None:
        handle.observe("input_video", self._on_source)
        for stream in self.sinks:
            handle.observe(stream, self._on_sink)

    def _on_source(self, packet) -> None:
        if packet is not None:
            with self._lock:
                self.emitted[packet.timestamp] = time.perf_counter()
                self.pending[packet.timestamp] = len(self.sinks)

    def _on_sink(self, packet) -> None:
        if packet is None:
            return
        now = time.perf_counter()
        with self._lock:  # observers attach just after the threads start: the very first frame may be unseen
            left = self.pending.get(packet.timestamp)
            if left is None:
                return
            if left > 1:
                self.pending[packet.timestamp] = left - 1
            else:
                del self.pending[packet.timestamp]
                self.latencies.append(now - self.emitted[packet.timestamp])

    def result(self) -> dict:
        return {"latencies_ms": [x * 1e3 for x in self.latencies], "frames_in": len(self.emitted)}


def live_one_process(clip: Path, n: int, frames: int, out: Path, video: bool, sets: list[str]) -> list[dict]:
    from pipelines.multistream import StreamSet, StreamSpec

    graphs = {f"s{i}": live_graph(clip, f"s{i}", frames, out, video, sets, n > 1) for i in range(n)}
    probes = {name: LatencyProbe(sink_streams(video)) for name in graphs}
    streams = StreamSet(lambda spec: graphs.pop(spec.name))
    for name in list(graphs):
        probes[name].attach(streams.add(StreamSpec(name, str(clip))))
    streams.wait()
    if streams.failures():
        raise SystemExit(f"live streams failed: {streams.failures()}")
    return [p.result() for p in probes.values()]


def latency_worker(args) -> int:
    """One stream in this process: build, say ready, start on a line from stdin, print the probe's JSON."""
    graph = live_graph(Path(args.clip), args.name, args.live_frames, Path(args.out), args.video, [], False)
    print("ready", flush=True)
    sys.stdin.readline()
    probe = LatencyProbe(sink_streams(args.video))
    handle = graph.start()
    probe.attach(handle)
    handle.wait()
    print(json.dumps(probe.result()), flush=True)
    return 0


def live_separate(clip: Path, n: int, frames: int, out: Path, video: bool) -> list[dict]:
    command = [sys.executable, __file__, "--latency-worker", "--clip", str(clip), "--out", str(out),
               "--live-frames", str(frames), *(["--video"] if video else [])]
    workers = [subprocess.Popen([*command, "--name", f"s{i}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, cwd=ROOT) for i in range(n)]
    for w in workers:  # every graph built before any starts
        if w.stdout.readline().strip() != "ready":
            raise SystemExit(f"latency worker failed (exit {w.wait()})")
    for w in workers:
        w.stdin.write("go\n")
        w.stdin.flush()
    results = []
    for w in workers:
        line, _ = w.communicate()
        if w.returncode != 0:
            raise SystemExit(f"latency worker failed (exit {w.returncode})")
        results.append(json.loads(line.strip().splitlines()[-1]))
    return results


def summarize_live(results: list[dict]) -> dict:
    lat = sorted(x for r in results for x in r["latencies_ms"])
    pick = lambda q: lat[min(len(lat) - 1, round(q * (len(lat) - 1)))] if lat else float("nan")  # noqa: E731
    return {"p50": pick(0.5), "p99": pick(0.99), "in": sum(r["frames_in"] for r in results), "out": len(lat)}


# ---------------------------------------------------------------- the benchmark
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure(args) -> int:
    work = Path(tempfile.mkdtemp(prefix="framegraph-streams-bench-"))
    started = time.perf_counter()
    try:
        return _measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        print(f"(the benchmark took {time.perf_counter() - started:.0f} s)")


def _measure(args, work: Path) -> int:
    clip, live_clip = work / "clip.mp4", work / "live.mp4"
    make_clip(clip, args.frames)
    make_clip(live_clip, args.live_frames)
    ways = {"one process": lambda c, n, o: one_process(c, n, o, args.video, []),
            "separate": lambda c, n, o: separate(c, n, o, args.video)}
    ways["one process, batched"] = lambda c, n, o: one_process(c, n, o, args.video, BATCHED)
    fps = {(n, w): [] for n in args.streams for w in ways}
    rss = {(n, w): [] for n in args.streams for w in ways}
    p99 = {(n, w): [] for n in args.streams for w in ways}
    live = {}
    for r in range(args.rounds):
        order = list(ways) if r % 2 == 0 else list(reversed(ways))
        for n in args.streams:
            for way in order:
                out = work / f"out-{r}-{n}-{len(fps[n, way])}-{way.split(',')[-1].strip().replace(' ', '_')}"
                out.mkdir()
                wall, peaks = run_processes(ways[way](clip, n, out), out)
                written = frames_written(out)
                if written != n * args.frames:
                    print(f"warning: {way}, {n} streams wrote {written} of {n * args.frames} frames", file=sys.stderr)
                fps[n, way].append(n * args.frames / wall)
                rss[n, way].append(sum(peaks) / 1024)
                shutil.rmtree(out)
                out.mkdir()
                if way == "separate":
                    results = live_separate(live_clip, n, args.live_frames, out, args.video)
                else:
                    sets = BATCHED if "batched" in way else []
                    results = live_one_process(live_clip, n, args.live_frames, out, args.video, sets)
                live[n, way] = summarize_live(results)
                p99[n, way].append(live[n, way]["p99"])
                shutil.rmtree(out)
                print(f"round {r + 1}, {n} streams, {way}: {wall:.1f} s, {fps[n, way][-1]:.1f} frames/s, peak RSS "
                      f"{rss[n, way][-1]:.0f} MiB; live p50 {live[n, way]['p50']:.1f} ms, p99 "
                      f"{live[n, way]['p99']:.1f} ms, {live[n, way]['out']}/{live[n, way]['in']} frames", flush=True)
    report(args, ways, fps, rss, p99, live)
    return 0


def _median(values: list[float], rounds: int, digits: int) -> str:
    text = f"{statistics.median(values):.{digits}f}"
    return text + (f" ({min(values):.{digits}f}-{max(values):.{digits}f})" if rounds > 1 else "")


def report(args, ways, fps, rss, p99, live) -> None:
    load = os.getloadavg()[0]
    print(f"\nmachine: {cpu_model()}, {len(os.sched_getaffinity(0))} cores, load average {load:.1f}, "
          f"Python {platform.python_version()}")
    print(f"graph {GRAPH.name}, {WIDTH}x{HEIGHT} {RATE} fps clip of {args.frames} frames per stream, "
          f"{'detections and H.264 video' if args.video else 'detections only'}; live: first {args.live_frames} "
          f"frames paced at {RATE} fps; " + (f"medians of {args.rounds} rounds (min-max)" if args.rounds > 1
                                             else "1 round") + "\n")
    print("| streams | run | frames/s | peak RSS MiB | live p50 ms | live p99 ms | live frames out/in |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for n in args.streams:
        for way in ways:
            lv = live[n, way]  # the last round's
            print(f"| {n} | {way} | {_median(fps[n, way], args.rounds, 1)} | {_median(rss[n, way], args.rounds, 0)} "
                  f"| {lv['p50']:.1f} | {_median(p99[n, way], args.rounds, 1)} | {lv['out']}/{lv['in']} |")
    print("\none process / separate processes (medians):\n")
    others = [w for w in ways if w != "separate"]
    print("| streams | " + " | ".join(f"{w}: throughput | {w}: memory" for w in others) + " |")
    print("| ---: |" + " ---: | ---: |" * len(others))
    ratio = {}
    for n in args.streams:
        cells = []
        for way in others:
            t = statistics.median(fps[n, way]) / statistics.median(fps[n, "separate"])
            m = statistics.median(rss[n, way]) / statistics.median(rss[n, "separate"])
            ratio[n, way] = t, m
            cells += [f"{t:.2f}x", f"{m:.2f}x"]
        print(f"| {n} | " + " | ".join(cells) + " |")
    if 4 in args.streams:
        t, m = ratio[4, "one process"]
        met = t > 1 and m <= 0.5
        print(f"\ngoal at 4 streams: one process beats separate processes in throughput (> 1x) and uses at most "
              f"half their memory (<= 0.5x): throughput {t:.2f}x, memory {m:.2f}x: {'met' if met else 'NOT met'}")
    else:
        print("\ngoal (at 4 streams: throughput > 1x, memory <= 0.5x of separate processes): not run (--streams)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8], help="stream counts (default 1 2 4 8)")
    p.add_argument("--frames", type=int, default=900,
                   help="frames per stream in the throughput runs (default 900: 30 s; all of it ~5 min on 2 cores)")
    p.add_argument("--live-frames", type=int, default=150, help="frames per stream in the live runs (30 fps)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--video", action="store_true", help="also write each stream's annotated H.264 video")
    p.add_argument("--latency-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--clip", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--name", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.latency_worker:
        return latency_worker(args)
    if min(args.streams) < 1 or args.frames < 1 or args.live_frames < 1 or args.rounds < 1:
        p.error("--streams, --frames, --live-frames and --rounds must be >= 1")
    return measure(args)


if __name__ == "__main__":
    raise SystemExit(main())
