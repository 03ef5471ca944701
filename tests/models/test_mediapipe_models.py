"""The MediaPipe hand, pose, face mesh, iris and selfie models in assets/models/ are what their cards say.

Fast: every shipped file's sha256 matches its card (and the pin of the wheel it
came from), every ONNX model loads in ONNX Runtime with the card's input and
output names and shapes, and the decoded graph options agree with the models.
Slow: each ONNX model against its TFLite original in LiteRT on a real image,
within the tolerance its card states.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from media import astronaut_image, require

ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = ROOT / "assets" / "models"
MANIFEST = json.loads((MODELS_DIR / "mediapipe_models.json").read_text())
MODELS = sorted(MANIFEST["models"])
SOLUTIONS = ["hands", "pose", "face_mesh", "selfie_segmentation"]

FILE_ROW = re.compile(r"^\| `([^`]+)` \((?:original|converted)\) \| (\d+) \| `([0-9a-f]{64})` \|$")
INPUT_NAME_ROW = re.compile(r"^\| name \| `([^`]+)` \| `([^`]+)` \|$")
INPUT_SHAPE_ROW = re.compile(r"^\| shape \| `(\[[0-9,]+\])` NHWC \| `(\[[0-9,]+\])` NHWC")
OUTPUT_ROW = re.compile(r"^\| (\d+) \| `(\w+)` \| `([^`]+)` \| `(\[[0-9,]+\])` float32 \|")
PARITY_ROW = re.compile(r"^\| `([\w:]+)` \| ([0-9.e+-]+) \|")


def load_script(name: str):
    """A module of scripts/ (they are not a package), for its constants."""
    path = ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_scripts_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def card(model: str) -> dict:
    """The tables of assets/models/<model>.md, read back."""
    text = (MODELS_DIR / f"{model}.md").read_text()
    out = {"files": {}, "outputs": [], "tolerance": {}}
    for line in text.splitlines():
        if m := FILE_ROW.match(line):
            out["files"][m[1]] = (int(m[2]), m[3])
        elif m := INPUT_NAME_ROW.match(line):
            out["input_name"] = m[2]
        elif m := INPUT_SHAPE_ROW.match(line):
            out["input_shape"] = json.loads(m[2])
        elif m := OUTPUT_ROW.match(line):
            out["outputs"].append((m[2], json.loads(m[4])))
        elif m := PARITY_ROW.match(line):
            out["tolerance"][m[1]] = float(m[2])
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("model", MODELS)
def test_every_file_matches_the_sha256_and_size_in_its_card(model):
    files = card(model)["files"]
    assert {f"{model}.tflite", f"{model}.onnx"} <= set(files), files
    for name, (size, digest) in files.items():
        path = MODELS_DIR / name
        assert path.stat().st_size == size, name
        assert sha256(path) == digest, f"{name} differs from its card {model}.md"


def test_the_tflite_files_are_the_pinned_ones_of_the_mediapipe_wheel():
    pins = load_script("mediapipe_wheel").PINNED_SHA256
    for model, entry in MANIFEST["models"].items():
        assert pins[entry["source"]] == entry["tflite"]["sha256"] == sha256(MODELS_DIR / f"{model}.tflite")
    assert (MODELS_DIR / "handedness.txt").read_text().split() == ["Left", "Right"]
    assert pins["mediapipe/modules/hand_landmark/handedness.txt"] == sha256(MODELS_DIR / "handedness.txt")


@pytest.mark.onnxruntime
@pytest.mark.parametrize("model", MODELS)
def test_each_onnx_model_loads_with_the_interface_its_card_states(model):
    ort = pytest.importorskip("onnxruntime")
    stated = card(model)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # loading is what is tested
    sess = ort.InferenceSession(str(MODELS_DIR / f"{model}.onnx"), options, providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    assert (inp.name, inp.shape, inp.type) == (stated["input_name"], stated["input_shape"], "tensor(float)")
    assert [(o.name, o.shape) for o in sess.get_outputs()] == stated["outputs"]
    assert stated["outputs"], f"{model}.md lists no outputs"


@pytest.mark.parametrize("solution", SOLUTIONS)
def test_graph_options_come_from_the_pinned_wheel_graphs(solution):
    pins = load_script("mediapipe_wheel").PINNED_SHA256
    doc = json.loads((MODELS_DIR / f"{solution}_graph_options.json").read_text())
    src = doc["source"]
    assert pins[src["graph"]] == src["graph_sha256"]
    assert pins[src["python_solution"]] == src["python_solution_sha256"]
    for calculator, indices in doc["by_calculator"].items():
        assert all(doc["nodes"][i]["calculator"] == calculator for i in indices)


@pytest.mark.parametrize("solution, model", [("hands", "palm_detection_full"), ("hands", "palm_detection_lite"),
                                             ("pose", "pose_detection")])
def test_the_detectors_anchors_match_their_models_outputs(solution, model):
    doc = json.loads((MODELS_DIR / f"{solution}_graph_options.json").read_text())
    anchors, = (doc["nodes"][i]["options"]["mediapipe.SsdAnchorsCalculatorOptions"]
                for i in doc["by_calculator"]["SsdAnchorsCalculator"])
    decode, = (doc["nodes"][i]["options"]["mediapipe.TensorsToDetectionsCalculatorOptions"]
               for i in doc["by_calculator"]["TensorsToDetectionsCalculator"])
    count = load_script("write_mediapipe_model_cards").count_ssd_anchors(anchors)
    regressors, scores = (o["shape"] for o in MANIFEST["models"][model]["outputs"])
    assert count == decode["num_boxes"] == regressors[1] == scores[1]
    assert decode["num_coords"] == regressors[2]
    _, h, w, _ = MANIFEST["models"][model]["input"]["shape"]
    assert (anchors["input_size_height"], anchors["input_size_width"]) == (h, w)


def test_the_python_solutions_default_thresholds_apply_to_named_nodes():
    doc = json.loads((MODELS_DIR / "hands_graph_options.json").read_text())
    params = doc["python_solution"]["calculator_params"]
    entry = params["palmdetectioncpu__TensorsToDetectionsCalculator.min_score_thresh"]
    node = doc["nodes"][entry["node_index"]]
    assert node["calculator"] == "TensorsToDetectionsCalculator" and entry["default_value"] == 0.5
    assert doc["python_solution"]["side_inputs"]["num_hands"]["default_value"] == 2


def _tensor(rgb: np.ndarray, shape, value_range, letterbox: bool) -> np.ndarray:
    import cv2

    _, h, w, _ = shape
    if letterbox:
        scale = min(w / rgb.shape[1], h / rgb.shape[0])
        nw, nh = round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)
        canvas = np.zeros((h, w, 3), np.uint8)
        top, left = (h - nh) // 2, (w - nw) // 2
        canvas[top:top + nh, left:left + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    else:
        canvas = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)
    lo, hi = value_range
    return (canvas.astype(np.float32) * ((hi - lo) / 255.0) + lo)[None]


@pytest.mark.slow
@pytest.mark.litert
@pytest.mark.onnxruntime
@pytest.mark.parametrize("model", MODELS)
def test_onnx_matches_the_tflite_in_litert_within_the_cards_tolerance(model):
    litert = pytest.importorskip("ai_edge_litert.interpreter", reason="needs ai-edge-litert (LiteRT)")
    ort = pytest.importorskip("onnxruntime")
    cv2 = pytest.importorskip("cv2")
    rgb = cv2.cvtColor(cv2.imread(str(require(astronaut_image))), cv2.COLOR_BGR2RGB)
    entry, stated = MANIFEST["models"][model], card(model)
    interp = litert.Interpreter(model_path=str(MODELS_DIR / f"{model}.tflite"))
    interp.allocate_tensors()
    sess = ort.InferenceSession(str(MODELS_DIR / f"{model}.onnx"), providers=["CPUExecutionProvider"])
    names = [o["name"] for o in entry["outputs"]]
    for letterbox in (True, False):
        x = _tensor(rgb, entry["input"]["shape"], entry["input"]["range"], letterbox)
        interp.set_tensor(interp.get_input_details()[0]["index"], x)
        interp.invoke()
        expected = [interp.get_tensor(o["index"]) for o in interp.get_output_details()]
        for name, got, want in zip(names, sess.run(names, {"input": x}), expected, strict=True):
            assert got.shape == want.shape
            diff = float(np.abs(got - want).max())
            assert diff <= stated["tolerance"][name], f"{model} {name}: max |diff| {diff:.3g}"
