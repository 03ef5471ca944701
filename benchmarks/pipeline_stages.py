"""The work of face_detect, one stage at a time, and the careful hand-written loop: parts of
benchmarks/pipeline_limit.py (see there)."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "assets/models/face_detection_short_range.onnx"
CRF, PRESET = 23, "veryfast"  # the writer's defaults, which the graph runs with


@dataclass(frozen=True)
class Cost:
    """One stage alone, per frame: CPU of every thread of the process, and the wall clock."""

    cpu_ms: float
    wall_ms: float


def _measure(fn, frames: int) -> Cost:
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return Cost(1000 * (time.process_time() - cpu) / frames, 1000 * (time.perf_counter() - wall) / frames)


class Detector:
    """BlazeFace short range as the graph runs it: the same letterbox, ONNX Runtime with spinning off (as the
    graph's engine sets it), and the graph's own box decoding, NMS and render objects."""

    def __init__(self, width: int, height: int, spinning: bool = False, threads: int = 0):
        import onnxruntime as ort

        from calculators.detection.ssd_anchors import generate_anchors
        from pipelines import Graph, load_graph
        from pipelines.types import LetterboxPadding

        plan = Graph(load_graph(ROOT / "graphs/face_detect.yaml", overrides=["display.enabled=false"])).plan
        nodes = {rn.name: rn for rn in plan.nodes}

        def make(name):
            node = nodes[name]
            obj = node.cls(node.options)
            obj.open(None) if name.endswith("tensors_to_detections") else None
            return obj

        self.decoder, self.nms = make("face_detection/tensors_to_detections"), make("face_detection/non_max_suppression")
        self.render_data = make("render_data")
        self.anchors = generate_anchors(nodes["face_detection/anchors"].options)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        if not spinning:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            so.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(MODEL), sess_options=so, providers=["CPUExecutionProvider"])
        scale = min(128 / width, 128 / height)
        ox, oy = (128 - width * scale) / 2, (128 - height * scale) / 2
        self.matrix = np.float32([[scale, 0, ox - 0.5 + scale / 2], [0, scale, oy - 0.5 + scale / 2]])
        self.padding = LetterboxPadding(ox / 128, oy / 128, ox / 128, oy / 128)

    def tensor(self, image: np.ndarray, to_rgb: int | None = None) -> np.ndarray:
        """Letterbox 128x128 in [-1, 1]; `to_rgb` converts the small picture only (a BGR frame)."""
        small = cv2.warpAffine(image, self.matrix, (128, 128), flags=cv2.INTER_LINEAR, borderValue=0)
        if to_rgb is not None:
            small = cv2.cvtColor(small, to_rgb)
        return (small.astype(np.float32) * (1 / 127.5) - 1.0)[None]

    def infer(self, tensor: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {"input": tensor})

    def postprocess(self, outputs: list[np.ndarray]):
        from calculators.detection.detection_letterbox_removal import remove_letterbox

        regressors, scores = outputs
        return remove_letterbox(self.nms.suppress(self.decoder.decode(regressors, scores, self.anchors)), self.padding)

    def detect(self, tensor: np.ndarray):
        return self.postprocess(self.infer(tensor))


def open_encoder(path: Path, width: int, height: int, fps: float, thread_type: str = "FRAME"):
    """libx264 as the writer opens it: crf 23, veryfast, threads 0, frame threads, a keyframe every 2 s.
    thread_type="SLICE" is PyAV's default, what a plain PyAV loop gets."""
    rate = Fraction(fps).limit_denominator(1001)
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    cc = stream.codec_context
    cc.thread_count, cc.thread_type, cc.gop_size = 0, thread_type, max(1, round(2 * fps))
    cc.options = {"crf": str(CRF), "preset": PRESET}
    return container, stream


def stage_costs(clip: Path, tmp: Path, sample: int = 40) -> dict[str, Cost]:
    """Each stage alone over the clip (decode, encode) or its first `sample` frames (the per-frame stages)."""
    frames: list[np.ndarray] = []

    def decode(keep: bool) -> int:
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # what FFmpeg's H.264 decoder can spread over cores
            count = 0
            for f in container.decode(stream):
                array = f.to_ndarray(format="yuv420p")
                count += 1
                if keep:
                    frames.append(array)
        return count

    # Timed without keeping the arrays, as a pipeline hands each one on and frees it: holding the whole clip
    # would count the page faults of hundreds of MB of fresh memory (twice the CPU at 1080p), which no
    # streaming pipeline pays. The frames the other stages use come from a second, untimed pass.
    counted: list[int] = []
    whole = _measure(lambda: counted.append(decode(keep=False)), 1)
    n = decode(keep=True)
    assert n == counted[0], f"the two decoding passes gave {counted[0]} and {n} frames"
    costs = {"decode (PyAV, to yuv420p arrays)": Cost(whole.cpu_ms / n, whole.wall_ms / n)}
    height, width = frames[0].shape[0] * 2 // 3, frames[0].shape[1]
    with av.open(str(clip)) as c:
        fps = float(c.streams.video[0].average_rate or 25)
    # One intra-op thread: the least CPU per run (a 128x128 model gains nothing from a second thread's hand-offs).
    detector = Detector(width, height, threads=1)
    # RGB copies made outside the timing: a letterbox that reads the decoder's planes needs no full-frame RGB.
    rgb = [cv2.cvtColor(f, cv2.COLOR_YUV2RGB_I420) for f in frames[:sample]]
    k = len(rgb)
    tensors: list[np.ndarray] = []
    costs["preprocessing (letterbox 128x128, scale)"] = _measure(
        lambda: tensors.extend(detector.tensor(im) for im in rgb), k)
    outputs, detections = [], []
    detector.infer(tensors[0])  # ORT's first run allocates
    costs["inference (ONNX Runtime)"] = _measure(lambda: outputs.extend(detector.infer(t) for t in tensors), k)
    costs["box decoding, weighted NMS"] = _measure(
        lambda: detections.extend(detector.postprocess(o) for o in outputs), k)
    from calculators.render.annotation_overlay import draw

    def render():
        for im, dets in zip(rgb, detections):
            draw(im, detector.render_data.render(dets))

    costs["drawing (boxes, keypoints, labels)"] = _measure(render, k)

    def encode():
        container, stream = open_encoder(tmp / "stage.mp4", width, height, fps)
        for i, yuv in enumerate(frames):
            frame = av.VideoFrame.from_numpy_buffer(yuv, format="yuv420p")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        container.close()

    costs[f"encode (libx264 {PRESET}, crf {CRF})"] = _measure(encode, n)
    return costs


def careful_loop(clip: Path, out: Path, thread_type: str = "FRAME") -> int:
    """A careful user's loop: OpenCV decode, letterbox on BGR and only the 128x128 picture to RGB, ONNX Runtime
    with its defaults, the graph's OpenCV drawing, OpenCV's BGR->I420 into PyAV's libx264 at the writer's settings
    (frame threads; thread_type="SLICE": PyAV's default, as a plain loop has it)."""
    from calculators.render.annotation_overlay import draw

    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    detector = Detector(width, height, spinning=True)
    container, stream = open_encoder(out, width, height, fps, thread_type)
    frames = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        dets = detector.detect(detector.tensor(bgr, cv2.COLOR_BGR2RGB))
        draw(bgr, detector.render_data.render(dets))  # the graph's drawing (colours swapped: the same work)
        frame = av.VideoFrame.from_ndarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
        frame.pts = frames
        container.mux(stream.encode(frame))
        frames += 1
    cap.release()
    container.mux(stream.encode(None))
    container.close()
    return frames


def threaded_loop(clip: Path, out: Path) -> int:
    """The same work as the graph does it, by hand on three plain threads joined by bounded queues: PyAV decode
    to the decoder's planes -> letterbox from the planes, ONNX Runtime (one thread, spinning off), box decoding,
    NMS and drawing on a copy of the planes -> libx264 at the writer's settings from those planes. No runtime,
    no per-node scheduling: what this machine reaches with this work pipelined, the practical ceiling a graph
    can be held against (the limit sums stages measured alone, which slow one another when they share cores)."""
    import queue
    import threading

    from calculators.image.yuv_warp import warp_yuv420p_to_rgb
    from calculators.render.annotation_overlay import draw_on_planes

    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        fps, width, height = float(stream.average_rate or 25), stream.width, stream.height
    detector = Detector(width, height, threads=1)
    matrix = np.vstack([detector.matrix, [0, 0, 1]])
    decoded: queue.Queue = queue.Queue(8)
    drawn: queue.Queue = queue.Queue(8)

    def decode():
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for picture in container.decode(stream):
                decoded.put(picture.to_ndarray())
        decoded.put(None)

    def detect():
        while (i420 := decoded.get()) is not None:
            chroma = i420[height:].reshape(2, height // 2, width // 2)
            small = warp_yuv420p_to_rgb(cv2, (i420[:height], chroma[0], chroma[1]), matrix, (128, 128),
                                        cv2.BORDER_CONSTANT)
            detections = detector.detect((small.astype(np.float32) * (1 / 127.5) - 1.0)[None])
            canvas = i420.copy()
            draw_on_planes(canvas, detector.render_data.render(detections))
            drawn.put(canvas)
        drawn.put(None)

    threads = [threading.Thread(target=decode, daemon=True), threading.Thread(target=detect, daemon=True)]
    container, stream = open_encoder(out, width, height, fps)
    for thread in threads:
        thread.start()
    frames = 0
    while (i420 := drawn.get()) is not None:
        frame = av.VideoFrame.from_numpy_buffer(i420, format="yuv420p")
        frame.pts = frames
        container.mux(stream.encode(frame))
        frames += 1
    container.mux(stream.encode(None))
    container.close()
    for thread in threads:
        thread.join()
    return frames


def graph_run(clip: Path, out: Path) -> int:
    """`run-graph face_detect --source CLIP --output OUT --no-display`, in this process (no start-up counted)."""
    from pipelines import Graph, load_graph

    config = load_graph(ROOT / "graphs/face_detect.yaml", overrides=[
        f"source.source={clip}", f"video_writer.path={out}", "video_writer.enabled=true", "display.enabled=false"])
    graph = Graph(config)
    graph.run(timeout=900)
    return graph.last_stats.row("video_writer").packets_in


def timed(fn, *args) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (all threads) and the frame count of fn(*args)."""
    cpu, wall = os.times(), time.perf_counter()
    frames = fn(*args)
    wall, end = time.perf_counter() - wall, os.times()
    return wall, (end.user + end.system) - (cpu.user + cpu.system), frames
