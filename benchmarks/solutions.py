"""The solution graphs against MediaPipe 0.10.21's own legacy solution loop, same clip, same run.

Each of graphs/hands.yaml, face_mesh.yaml, pose.yaml, selfie_segmentation.yaml and background_blur.yaml against
benchmarks/mediapipe_solution_loop.py (``mp.solutions.hands`` / ``face_mesh`` / ``pose`` /
``selfie_segmentation`` with default options, drawn with mediapipe's drawing_utils or OpenCV, H.264 written
by PyAV's libx264 at framegraph's writer defaults: preset veryfast, crf 23). Both sides read the same looped
clip (assets/media/cup_hands.mp4 for hands, grace_hopper_pan.mp4 for the others, concatenated ``--loops``
times into a temp dir once) and write the annotated video. Rounds alternate which side goes first.

Timed, per solution (fps of the medians over rounds):

* wall: ``run-graph GRAPH --source CLIP --output out.mp4 --no-display --no-progress -q`` and the MediaPipe
  script, each as a subprocess, process start, imports and model loading included;
* in-process: framegraph through the graph API from the first frame out of the source to the graph's end,
  MediaPipe from the first frame read to the file closed (start-up excluded on both sides).

Goal: framegraph >= 1.2x MediaPipe's fps for every solution. Then, for the landmark graphs, live mode
(``source.realtime``: paced at the clip's frame rate, as a camera): p50/p99 of each frame's end-to-end latency,
from the source emitting it to the annotated frame reaching the writer, against one frame interval at 30 fps
(33 ms), and the frames the flow limiter dropped.

    python benchmarks/solutions.py [--rounds 3] [--loops-hands 2] [--loops-face 6] [--mediapipe-python PATH]

MediaPipe 0.10.21 pins NumPy < 2, so its loop runs under a side interpreter: ``--mediapipe-python`` (default
$FRAMEGRAPH_MEDIAPIPE_PYTHON, else /tmp/mpenv/bin/python), made as for
scripts/make_mediapipe_solution_reference.py, plus PyAV::

    python -m venv /tmp/mpenv
    /tmp/mpenv/bin/pip install mediapipe==0.10.21 'numpy<2' opencv-contrib-python av

Without it the benchmark says so and exits 2 (``python -m benchmarks`` skips it).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipelines import Graph, load_graph  # noqa: E402

LOOP_SCRIPT = Path(__file__).resolve().parent / "mediapipe_solution_loop.py"
SOLUTIONS = [("hands", "cup_hands"), ("face_mesh", "grace_hopper_pan"), ("pose", "grace_hopper_pan"),
             ("selfie_segmentation", "grace_hopper_pan"), ("background_blur", "grace_hopper_pan")]
LANDMARK_GRAPHS = ("hands", "face_mesh", "pose")
FRAME_INTERVAL_MS = 1000 / 30
LIVE_FRAMES = 300  # ~11 s of each clip paced at its rate


def default_mediapipe_python() -> str:
    return os.environ.get("FRAMEGRAPH_MEDIAPIPE_PYTHON", "/tmp/mpenv/bin/python")


def side_interpreter(path: str) -> str | None:
    """The side interpreter if it runs MediaPipe's loop (mediapipe, cv2, av importable), else None."""
    if not Path(path).is_file():
        return None
    probe = subprocess.run([path, "-c", "import mediapipe, cv2, av"], capture_output=True, timeout=120)
    return path if probe.returncode == 0 else None


def loop_clip(source: Path, times: int, out: Path) -> int:
    """`source` concatenated `times` times (re-encoded near-losslessly, crf 12), so a run lasts several seconds."""
    import av

    with av.open(str(source)) as src:
        stream = src.streams.video[0]
        rate = Fraction(stream.average_rate).limit_denominator(1001)
        frames = [f.to_ndarray(format="rgb24") for f in src.decode(stream)]
    with av.open(str(out), mode="w") as dst:
        enc = dst.add_stream("libx264", rate=rate)
        enc.height, enc.width = frames[0].shape[:2]
        enc.pix_fmt, enc.codec_context.options = "yuv420p", {"preset": "veryfast", "crf": "12"}
        for _ in range(times):
            for rgb in frames:
                dst.mux(enc.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        dst.mux(enc.encode())
    return len(frames) * times


def _graph(name: str, clip: Path, extra: list[str]) -> Graph:
    return Graph(load_graph(ROOT / "graphs" / f"{name}.yaml",
                            overrides=[f"source.source={clip}", "display.enabled=false", *extra]))


def framegraph_wall(run_graph: str, name: str, clip: Path, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([run_graph, str(ROOT / "graphs" / f"{name}.yaml"), "--source", str(clip), "--output", str(out),
                    "--no-display", "--no-progress", "-q"], check=True, cwd=ROOT)
    return time.perf_counter() - start


def framegraph_in_process(name: str, clip: Path, out: Path) -> tuple[float, int]:
    """Seconds from the first frame out of the source to the graph's end (writer closed), and frames written."""
    graph = _graph(name, clip, [f"video_writer.path={out}", "video_writer.enabled=true"])
    first: list[float] = []
    handle = graph.start()
    handle.observe("input_video", lambda p: p is not None and not first and first.append(time.perf_counter()))
    handle.wait()
    end = time.perf_counter()
    return end - first[0], handle.stats.row("video_writer").packets_in


def mediapipe_wall(python: str, name: str, clip: Path, out: Path) -> tuple[float, float, int]:
    """Whole-process seconds, in-process seconds and frames of MediaPipe's loop."""
    start = time.perf_counter()
    done = subprocess.run([python, str(LOOP_SCRIPT), name, str(clip), str(out)], check=True, capture_output=True,
                          text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return wall, result["seconds"], result["frames"]


def live_latency(name: str, clip: Path, out: Path) -> tuple[float, float, int, int]:
    """p50 and p99 end-to-end latency (ms) in live mode, frames in and frames out."""
    graph = _graph(name, clip, ["source.realtime=true", f"source.max_frames={LIVE_FRAMES}",
                                f"video_writer.path={out}", "video_writer.enabled=true"])
    arrived: dict[int, float] = {}
    latencies: list[float] = []
    lock = threading.Lock()

    def on_input(packet):
        if packet is not None:
            with lock:
                arrived[packet.timestamp] = time.perf_counter()

    def on_output(packet):
        if packet is not None:
            now = time.perf_counter()
            with lock:  # observers are added just after the threads start: the very first frame may be unseen
                if packet.timestamp in arrived:
                    latencies.append(now - arrived[packet.timestamp])

    handle = graph.start()
    handle.observe("input_video", on_input)
    handle.observe("output_video", on_output)
    handle.wait()
    lat = sorted(latencies)
    pick = lambda q: lat[min(len(lat) - 1, round(q * (len(lat) - 1)))] * 1e3  # noqa: E731
    return pick(0.5), pick(0.99), len(arrived), len(lat)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loops-hands", type=int, default=2, help="cup_hands.mp4 (217 frames) this many times")
    parser.add_argument("--loops-face", type=int, default=6, help="grace_hopper_pan.mp4 (90 frames) this many times")
    parser.add_argument("--only", nargs="*", default=[s for s, _ in SOLUTIONS], help="solutions to run")
    parser.add_argument("--mediapipe-python", default=default_mediapipe_python(),
                        help="MediaPipe 0.10.21's interpreter (default: $FRAMEGRAPH_MEDIAPIPE_PYTHON or /tmp/mpenv)")
    args = parser.parse_args()
    python = side_interpreter(args.mediapipe_python)
    if python is None:
        print(f"MediaPipe's side interpreter '{args.mediapipe_python}' is missing or cannot import mediapipe, cv2 "
              "and av; create it as this module's docstring says (python -m venv /tmp/mpenv; /tmp/mpenv/bin/pip "
              "install mediapipe==0.10.21 'numpy<2' opencv-contrib-python av) or pass --mediapipe-python PATH",
              file=sys.stderr)
        return 2
    run_graph = shutil.which("run-graph", path=str(Path(sys.executable).parent)) or shutil.which("run-graph")
    if run_graph is None:
        print("run-graph is not installed in this environment: pip install -e .", file=sys.stderr)
        return 2
    chosen = [(s, c) for s, c in SOLUTIONS if s in args.only]
    loops = {"cup_hands": args.loops_hands, "grace_hopper_pan": args.loops_face}
    with tempfile.TemporaryDirectory(prefix="fg_solutions_") as tmp:
        tmp = Path(tmp)
        clips, frames = {}, {}
        for clip in {c for _, c in chosen}:
            clips[clip] = tmp / f"{clip}_x{loops[clip]}.mp4"
            frames[clip] = loop_clip(ROOT / "assets/media" / f"{clip}.mp4", loops[clip], clips[clip])
        times = {s: {"fg_wall": [], "fg_in": [], "mp_wall": [], "mp_in": []} for s, _ in chosen}
        for r in range(args.rounds):
            for name, clip in chosen:
                t, src = times[name], clips[clip]
                fg_out, mp_out = tmp / f"{name}_fg.mp4", tmp / f"{name}_mp.mp4"
                sides = ["fg", "mp"] if r % 2 == 0 else ["mp", "fg"]
                for side in sides:
                    if side == "fg":
                        t["fg_wall"].append(framegraph_wall(run_graph, name, src, fg_out))
                        seconds, written = framegraph_in_process(name, src, fg_out)
                        t["fg_in"].append(seconds)
                    else:
                        wall, seconds, mp_frames = mediapipe_wall(python, name, src, mp_out)
                        t["mp_wall"].append(wall)
                        t["mp_in"].append(seconds)
                if written != frames[clip] or mp_frames != frames[clip]:
                    print(f"warning: {name} wrote {written} (framegraph) / {mp_frames} (MediaPipe) of "
                          f"{frames[clip]} frames", file=sys.stderr)
                print(f"round {r + 1} {name}: framegraph {t['fg_wall'][-1]:.2f} s wall, {t['fg_in'][-1]:.2f} s "
                      f"in process; MediaPipe {t['mp_wall'][-1]:.2f} s, {t['mp_in'][-1]:.2f} s", flush=True)
        print(f"\n{'solution':<20} {'frames':>6}  {'fg wall':>8} {'mp wall':>8} {'ratio':>6}  "
              f"{'fg in-proc':>10} {'mp in-proc':>10} {'ratio':>6}   (fps, medians of {args.rounds} rounds)")
        worst = float("inf")
        for name, clip in chosen:
            n, t = frames[clip], times[name]
            fps = {k: n / statistics.median(v) for k, v in t.items()}
            ratio_wall, ratio_in = fps["fg_wall"] / fps["mp_wall"], fps["fg_in"] / fps["mp_in"]
            worst = min(worst, ratio_wall, ratio_in)
            print(f"{name:<20} {n:>6}  {fps['fg_wall']:>8.1f} {fps['mp_wall']:>8.1f} {ratio_wall:>5.2f}x  "
                  f"{fps['fg_in']:>10.1f} {fps['mp_in']:>10.1f} {ratio_in:>5.2f}x")
        print(f"worst ratio {worst:.2f}x (goal >= 1.2x): {'met' if worst >= 1.2 else 'NOT met'}")
        live = [(s, c) for s, c in chosen if s in LANDMARK_GRAPHS]
        if live:
            print(f"\nlive mode (paced at the clip's rate, first {LIVE_FRAMES} frames): end-to-end latency per frame, "
                  f"goal p99 <= {FRAME_INTERVAL_MS:.1f} ms")
            print(f"{'graph':<12} {'p50 ms':>7} {'p99 ms':>7} {'frames in':>9} {'out':>5}  goal")
        for name, clip in live:
            p50, p99, n_in, n_out = live_latency(name, clips[clip], tmp / f"{name}_live.mp4")
            print(f"{name:<12} {p50:>7.1f} {p99:>7.1f} {n_in:>9} {n_out:>5}  "
                  f"{'met' if p99 <= FRAME_INTERVAL_MS else 'NOT met'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
