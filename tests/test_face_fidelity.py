"""Face detection agrees with MediaPipe's own (mediapipe 0.10.21, same models, 0.5 threshold) per frame:
same number of faces and IoU >= 0.8 on at least 98% of frames, for both graphs and every CPU engine."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import media
from metrics import iou
from pipelines import Graph, load_graph

pytestmark = pytest.mark.slow  # several seconds: real clips through every engine

pytest.importorskip("cv2", reason="needs OpenCV and PyAV (pip install 'framegraph[video]')")
pytest.importorskip("av", reason="needs OpenCV and PyAV (pip install 'framegraph[video]')")

ROOT = Path(__file__).resolve().parents[1]
GRAPHS = {"short_range": ROOT / "graphs/face_detect.yaml", "full_range": ROOT / "graphs/face_detect_full_range.yaml"}
# engine -> the modules it needs here (converting engines need their converter too).
ENGINES = {"onnxruntime": ("onnxruntime",), "openvino": ("openvino",), "litert": ("ai_edge_litert",),
           "tvm": ("tvm", "onnx"), "mnn": ("MNN", "onnx"), "ncnn": ("ncnn", "pnnx", "onnx"),
           "torch": ("torch", "onnx2torch", "onnx")}
MEDIA = {"carphone": media.carphone_clip, "astronaut": media.astronaut_image, "astronaut_pan": media.astronaut_pan_clip}


def agreement(ours: list[dict], reference: list[dict]) -> tuple[float, float]:
    """Fraction of frames where the face count matches and every face pairs (greedy by IoU) with IoU >= 0.8."""
    assert len(ours) == len(reference), f"{len(ours)} frames out, reference has {len(reference)}"
    good, ious = 0, []
    for mine, ref in zip(ours, reference):
        a, b = mine["detections"], ref["detections"]
        if len(a) != len(b):
            continue
        pairs = [max((iou(x["xyxy"], y["xyxy"]) for y in b), default=1.0) for x in a]
        ious += pairs
        good += all(p >= 0.8 for p in pairs)
    return good / len(reference), float(np.mean(ious)) if ious else 0.0


def run_detections(graph_path: Path, source: Path, engine: str, out: Path) -> list[dict]:
    config = load_graph(graph_path, overrides=[f"source.source={source}", f"detections_writer.path={out}",
                                               "detections_writer.enabled=true", "display.enabled=false"])
    for node in config.nodes:
        if node.calculator == "InferenceCalculator":
            node.options["engine"] = [engine]
    Graph(config).run(timeout=120)
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("model", list(GRAPHS))
@pytest.mark.parametrize("media_name", list(MEDIA))
def test_detections_agree_with_mediapipe(engine, model, media_name, tmp_path):
    missing = [m for m in ENGINES[engine] if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{engine} needs {', '.join(missing)} (see docs/engines.md)")
    source = media.require(MEDIA[media_name])
    reference_file = media.mediapipe_reference(media_name, model)
    reference = [json.loads(line) for line in Path(reference_file).read_text().splitlines()]
    ours = run_detections(GRAPHS[model], source, engine, tmp_path / "out.jsonl")
    rate, mean_iou = agreement(ours, reference)
    assert rate >= 0.98, f"{engine}/{model}/{media_name}: {rate:.1%} of frames agree (mean IoU {mean_iou:.3f})"
    assert [d["frame"] for d in ours] == list(range(len(reference)))
