"""MediaPipeTasksCalculator: MediaPipe's own FaceDetector and ObjectDetector on the BlazeFace model, offline.

The FaceDetector runs assets/models/face_detection_short_range.tflite as it is (it carries Tasks metadata);
the ObjectDetector runs the same network made into an ObjectDetector model by
scripts/make_face_detector_task.py, in the test's temporary folder. Their detections are checked against the
MediaPipe 0.10.21 reference in tests/data/mediapipe_reference. The error cases need no mediapipe."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from media import astronaut_image, carphone_clip, mediapipe_reference, require
from metrics import iou

from pipelines.errors import CalculatorError, EngineUnavailableError, GraphValidationError, ModelError
from pipelines.testing import CalculatorRunner
from pipelines.types import Frame

pytestmark = pytest.mark.slow  # several seconds: MediaPipe Tasks on real clips

pytest.importorskip("cv2", reason="needs OpenCV and PyAV (pip install 'framegraph[video]')")

ROOT = Path(__file__).resolve().parents[3]
MODEL = "assets/models/face_detection_short_range.tflite"
HAS_MEDIAPIPE = importlib.util.find_spec("mediapipe") is not None
needs_mediapipe = pytest.mark.skipif(
    not HAS_MEDIAPIPE, reason="mediapipe is not installed (pip install 'framegraph[mediapipe]'; mediapipe >= 0.10.30 "
                              "installs with NumPy 2)")


def tasks(options: str, name: str = "mediapipe_faces") -> CalculatorRunner:
    return CalculatorRunner(f"name: {name}\ncalculator: MediaPipeTasksCalculator\noptions: {options}", timeout=120)


def open_error(options: str) -> BaseException:
    with pytest.raises(CalculatorError) as info:
        tasks(options).run({"IMAGE": [Frame(np.zeros((64, 64, 3), np.uint8))]})
    return info.value.original


def test_missing_model_file_names_the_paths_tried():
    # In a graph, the validator looks the file up (the graph's folder, then the graph libraries) before any open.
    with pytest.raises(GraphValidationError) as info:
        tasks("{model: assets/models/no_such_model.tflite}").run({"IMAGE": [Frame(np.zeros((64, 64, 3), np.uint8))]})
    assert "option 'model': file assets/models/no_such_model.tflite not found; looked in " in str(info.value)
    assert str(ROOT) in str(info.value)


def test_missing_model_file_of_a_calculator_built_in_python_names_the_paths_tried(tmp_path, monkeypatch):
    from calculators.inference.mediapipe_tasks import MediaPipeTasksCalculator

    monkeypatch.chdir(tmp_path)
    calculator = MediaPipeTasksCalculator(MediaPipeTasksCalculator.Options(model="assets/models/no_such_model.tflite"))
    context = type("Context", (), {"node_name": "mediapipe_faces"})()
    with pytest.raises(ModelError) as info:
        calculator.open(context)
    message = str(info.value)
    assert message.startswith('node "mediapipe_faces": model file assets/models/no_such_model.tflite not found; '
                              f"looked in {tmp_path}, ")
    assert str(ROOT) in message


def test_a_file_that_is_not_a_tflite_or_task_bundle_is_refused_before_mediapipe_sees_it():
    error = open_error("{model: assets/models/face_detection_short_range.onnx}")
    assert isinstance(error, ModelError)
    assert "face_detection_short_range.onnx is neither a .tflite model nor a .task bundle" in str(error)
    assert "hint: task face_detector needs" in str(error)


def test_a_tflite_without_tasks_metadata_is_refused_with_what_the_task_needs(tmp_path):
    bare = tmp_path / "bare.tflite"
    data = (ROOT / MODEL).read_bytes()
    bare.write_bytes(data.replace(b"TFLITE_METADATA", b"NOT_A_METADATA!"))  # same length: still a flatbuffer
    error = open_error(f"{{model: {bare}, task: object_detector}}")
    assert isinstance(error, ModelError)
    assert "bare.tflite has no MediaPipe Tasks metadata (TFLITE_METADATA)" in str(error)
    assert "ObjectDetector metadata" in str(error) and "InferenceCalculator (engine: litert)" in str(error)


def test_missing_mediapipe_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr("calculators.inference.mediapipe_tasks._mediapipe_installed", lambda: False)
    error = open_error(f"{{model: {MODEL}}}")
    assert isinstance(error, EngineUnavailableError)
    assert "MediaPipeTasksCalculator needs mediapipe, which is not installed" in str(error)
    assert 'pip install "framegraph[mediapipe]"' in str(error) and "NumPy 2" in str(error)


@pytest.mark.parametrize("options, message", [
    (f"{{model: {MODEL}, task: face_landmarker}}", "task must be one of face_detector, object_detector"),
    (f"{{model: {MODEL}, running_mode: live_stream}}", "running_mode must be one of image, video"),
    (f"{{model: {MODEL}, min_detection_confidence: 1.5}}", "min_detection_confidence must be in [0, 1]"),
])
def test_options_are_checked_before_anything_runs(options, message):
    with pytest.raises(GraphValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        tasks(options).run({"IMAGE": []})


# --- with mediapipe -----------------------------------------------------------------------------------------

def read_rgb(path) -> np.ndarray:
    cv2 = pytest.importorskip("cv2", reason="reading the test media needs opencv (pip install 'framegraph[video]')")
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def carphone_frames() -> list[np.ndarray]:
    # OpenCV decodes, as the reference's frames were, so the pixels match.
    cv2 = pytest.importorskip("cv2", reason="decoding the test clip needs opencv (pip install 'framegraph[video]')")
    cap, frames = cv2.VideoCapture(str(require(carphone_clip))), []
    while True:
        ok, bgr = cap.read()
        if not ok:
            return frames
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def reference(name: str) -> list[dict]:
    path = mediapipe_reference(name, "short_range")
    if path is None:
        pytest.skip(f"tests/data/mediapipe_reference/{name}_short_range.jsonl is missing")
    return [json.loads(line) for line in path.read_text().splitlines()]


def agreement(found: list, expected: list[dict], min_iou: float = 0.8) -> float:
    """Fraction of frames with the reference's face count, every face paired at IoU >= min_iou (pixels)."""
    good = 0
    for dets, ref in zip(found, expected, strict=True):
        boxes = dets.to_pixels(ref["width"], ref["height"]).xyxy.tolist()
        good += len(boxes) == len(ref["detections"]) and all(
            max(iou(b, r["xyxy"]) for r in ref["detections"]) >= min_iou for b in boxes)
    return good / len(expected)


def detect(options: str, frames: list[np.ndarray], step_us: int = 1) -> list:
    out = tasks(options).run({"IMAGE": [(i * step_us, Frame(f, i)) for i, f in enumerate(frames)]})
    return [p.payload for p in out["DETECTIONS"]]


@pytest.fixture(scope="module")
def object_detector_model(tmp_path_factory) -> Path:
    if not HAS_MEDIAPIPE:
        pytest.skip("mediapipe is not installed")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from make_face_detector_task import make_object_detector
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return make_object_detector(ROOT / MODEL, tmp_path_factory.mktemp("tasks"))


@pytest.mark.mediapipe
@needs_mediapipe
@pytest.mark.parametrize("running_mode", ["image", "video"])
@pytest.mark.parametrize("task", ["face_detector", "object_detector"])
def test_tasks_agree_with_the_mediapipe_reference_on_the_carphone_clip(task, running_mode, request):
    model = request.getfixturevalue("object_detector_model") if task == "object_detector" else MODEL
    found = detect(f"{{model: {model}, task: {task}, running_mode: {running_mode}}}", carphone_frames(),
                   step_us=33_367)
    # ObjectDetector stretches the frame onto the model's square input where FaceDetector letterboxes it,
    # and keeps the best anchor's box (NMS "DEFAULT") where FaceDetector blends them (WEIGHTED): on this
    # 176x144 clip its boxes overlap the reference's by IoU 0.73-0.80 on 12 of 120 frames, same faces.
    min_iou = 0.8 if task == "face_detector" else 0.7
    rate = agreement(found, reference("carphone"), min_iou)
    assert rate >= 0.98, f"{task} ({running_mode}): {rate:.1%} of frames agree with MediaPipe 0.10.21"
    assert all(d.labels == ("face",) * len(d) for d in found)
    assert all(d.keypoints.shape == (len(d), 6, 2) for d in found)  # right eye, left eye, nose, mouth, ears


@pytest.mark.mediapipe
@needs_mediapipe
@pytest.mark.parametrize("task", ["face_detector", "object_detector"])
def test_astronaut_face_box_keypoints_and_score(task, request):
    model = request.getfixturevalue("object_detector_model") if task == "object_detector" else MODEL
    image = read_rgb(require(astronaut_image))
    (dets,) = detect(f"{{model: {model}, task: {task}}}", [image])
    (ref,) = reference("astronaut")
    assert len(dets) == 1 and dets.relative
    face = dets.to_pixels(512, 512)
    assert iou(face.xyxy[0].tolist(), ref["detections"][0]["xyxy"]) >= 0.9
    assert abs(float(face.scores[0]) - ref["detections"][0]["score"]) < 0.02
    assert np.abs(face.keypoints[0] - np.array(ref["detections"][0]["keypoints"])).max() < 3.0  # pixels


@pytest.mark.mediapipe
@needs_mediapipe
def test_video_mode_accepts_packets_closer_than_a_millisecond(caplog):
    frames = carphone_frames()[:5]
    found = detect(f"{{model: {MODEL}, running_mode: video}}", frames, step_us=1)
    assert [len(d) for d in found] == [1] * 5
    assert "less than 1 ms apart" in caplog.text


@pytest.mark.mediapipe
@needs_mediapipe
def test_object_detector_on_a_model_without_detector_metadata_says_what_is_missing():
    error = open_error(f"{{model: {MODEL}, task: object_detector}}")
    assert isinstance(error, ModelError)
    assert "MediaPipe's ObjectDetector cannot run face_detection_short_range.tflite" in str(error)
    assert "BoundingBoxProperties" in str(error) and "scripts/make_face_detector_task.py" in str(error)
