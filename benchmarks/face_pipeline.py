"""Batch annotation speed: the face_detect graph against the hand-written single-thread loop, same run.

Both decode the clip, detect faces with BlazeFace short range on ONNX Runtime (the same letterbox, decoding
and weighted NMS), draw the boxes and write H.264 (libx264, crf 23, veryfast, the same encoder threads).
pip's OpenCV cannot encode H.264, so the loop encodes with PyAV, as a user of it would; the loop with
OpenCV's own mp4v encoder, and the loop with ONNX Runtime's busy-waiting threads turned off (as the graph's
engine does), are timed too, for information. Rounds alternate; ratios are of medians.
Goal: graph/loop speed >= 1.6x at 1280x720 and >= 1.2x on the small clip.

    python benchmarks/face_pipeline.py [--rounds 3] [--seconds 10]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from pipelines import Graph, load_graph  # noqa: E402


def graph_run(clip: Path, out: Path) -> int:
    config = load_graph(ROOT / "graphs/face_detect.yaml", overrides=[
        f"source.source={clip}", f"video_writer.path={out}", "video_writer.enabled=true", "display.enabled=false"])
    graph = Graph(config)
    graph.run(timeout=600)
    return graph.last_stats.row("video_writer").packets_in


def _detector_parts():
    """The graph's own post-processing objects, so the loop does exactly the same decoding."""
    plan = Graph(load_graph(ROOT / "graphs/face_detect.yaml", overrides=["display.enabled=false"])).plan
    nodes = {rn.name: rn for rn in plan.nodes}
    from calculators.detection.ssd_anchors import generate_anchors

    decoder = nodes["face_detection/tensors_to_detections"]
    decoder = decoder.cls(decoder.options)
    decoder.open(None)
    nms = nodes["face_detection/non_max_suppression"]
    nms = nms.cls(nms.options)
    anchors = generate_anchors(nodes["face_detection/anchors"].options)
    return decoder, nms, anchors


def loop_run(clip: Path, out: Path, encoder: str, tuned: bool = False) -> int:
    """What a user writes by hand: read, letterbox, infer, decode, draw, write; one frame at a time."""
    import onnxruntime as ort

    from calculators.detection.detection_letterbox_removal import remove_letterbox
    from pipelines.types import LetterboxPadding

    decoder, nms, anchors = _detector_parts()
    so = ort.SessionOptions()
    if tuned:  # what the graph's engine does: ORT's pool threads stop busy-waiting between runs
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(ROOT / "assets/models/face_detection_short_range.onnx"), sess_options=so,
                                   providers=["CPUExecutionProvider"])
    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    scale = min(128 / width, 128 / height)
    sw, sh = width * scale, height * scale
    ox, oy = (128 - sw) / 2, (128 - sh) / 2
    matrix = np.float32([[scale, 0, ox - 0.5 + scale / 2], [0, scale, oy - 0.5 + scale / 2]])
    padding = LetterboxPadding(ox / 128, oy / 128, ox / 128, oy / 128)
    if encoder == "mp4v":
        writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    else:
        container = av.open(str(out), "w")
        stream = container.add_stream("libx264", rate=round(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 0  # PyAV's default: the encoder picks
        stream.codec_context.options = {"crf": "23", "preset": "veryfast"}
    frames = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        small = cv2.warpAffine(rgb, matrix, (128, 128), flags=cv2.INTER_LINEAR, borderValue=0)
        tensor = (small.astype(np.float32) / 127.5 - 1.0)[None]
        regressors, scores = session.run(None, {"input": tensor})
        dets = remove_letterbox(nms.suppress(decoder.decode(regressors, scores, anchors)), padding)
        for (x1, y1, x2, y2), score in zip(dets.to_pixels(width, height).xyxy, dets.scores):
            cv2.rectangle(bgr, (int(x1), int(y1)), (int(x2), int(y2)), (0, 255, 0), 2, cv2.LINE_AA)
            cv2.putText(bgr, f"face {score:.2f}", (int(x1), int(y1) - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (0, 255, 0), 1, cv2.LINE_AA)
        if encoder == "mp4v":
            writer.write(bgr)
        else:
            frame = av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format="yuv420p")
            frame.pts = frames
            container.mux(stream.encode(frame))
        frames += 1
    cap.release()
    if encoder == "mp4v":
        writer.release()
    else:
        container.mux(stream.encode(None))
        container.close()
    return frames


def timed(fn, *args) -> tuple[float, int]:
    start = time.perf_counter()
    frames = fn(*args)
    return time.perf_counter() - start, frames


def bench(name: str, clip: Path, rounds: int, tmp: Path) -> dict:
    results: dict[str, list[float]] = {"graph": [], "loop": [], "loop_tuned": [], "loop_mp4v": []}
    counts = {}
    timed(graph_run, clip, tmp / "warm.mp4")  # model load, imports, page cache
    for _ in range(rounds):
        for key, fn, args in (("loop", loop_run, (clip, tmp / "loop.mp4", "h264")),
                              ("graph", graph_run, (clip, tmp / "graph.mp4")),
                              ("loop_tuned", loop_run, (clip, tmp / "loop.mp4", "h264", True)),
                              ("loop_mp4v", loop_run, (clip, tmp / "loop.mp4", "mp4v"))):
            seconds, frames = timed(fn, *args)
            results[key].append(seconds)
            counts[key] = frames
    assert len(set(counts.values())) == 1, f"frame counts differ: {counts}"
    med = {k: statistics.median(v) for k, v in results.items()}
    n = counts["graph"]
    print(f"\n{name}: {clip.name}, {n} frames, median of {rounds} rounds")
    for key, label in (("loop", "hand-written loop, H.264 (PyAV)"),
                       ("loop_tuned", "same loop, ORT spinning off"),
                       ("loop_mp4v", "hand-written loop, mp4v (OpenCV)"),
                       ("graph", "framegraph face_detect.yaml, H.264")):
        print(f"  {label:<36} {med[key]:7.3f} s  {n / med[key]:7.1f} fps")
    speedup = med["loop"] / med["graph"]
    print(f"  speed-up graph / loop (same H.264 output): {speedup:.2f}x")
    print(f"  speed-up graph / loop with ORT spinning off: {med['loop_tuned'] / med['graph']:.2f}x (information)")
    print(f"  speed-up graph / loop with mp4v:            {med['loop_mp4v'] / med['graph']:.2f}x (information)")
    return {"name": name, "frames": n, **med, "speedup": speedup}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the generated 720p clip")
    args = parser.parse_args()
    from make_sample_clip import ensure_clip

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, OpenCV {cv2.__version__}, PyAV {av.__version__}")
    clips = [("small clip", ROOT / "assets/media/astronaut_pan.mp4"),
             ("720p clip", ensure_clip(size=(1280, 720), seconds=args.seconds))]
    with tempfile.TemporaryDirectory() as tmp:
        for name, clip in clips:
            bench(name, clip, args.rounds, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
