"""InferenceCalculator with the real BlazeFace models on the real engines, fed by ImageToTensorCalculator."""
from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from calculators.inference.engines import Engine, register_engine, unregister_engine
from calculators.inference.inference import InferenceCalculator
from media import astronaut_image, carphone_clip, mediapipe_reference, require
from pipelines import Graph
from pipelines.errors import CalculatorError, EngineUnavailableError, GraphValidationError, ModelError
from pipelines.testing import CalculatorRunner
from pipelines.types import Frame, Tensors

cv2 = pytest.importorskip("cv2", reason="ImageToTensorCalculator needs opencv (pip install 'framegraph[video]')")

ROOT = Path(__file__).resolve().parents[3]
MODELS = {  # name -> (input size, [onnx, tflite])
    "short_range": (128, ["assets/models/face_detection_short_range.onnx",
                          "assets/models/face_detection_short_range.tflite"]),
    "full_range": (192, ["assets/models/face_detection_full_range.onnx",
                         "assets/models/face_detection_full_range_sparse.tflite"]),
}
ENGINE_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "litert": "ai_edge_litert"}


def engine_param(name: str):
    missing = importlib.util.find_spec(ENGINE_MODULES[name]) is None
    return pytest.param(name, marks=[getattr(pytest.mark, name),
                                     pytest.mark.skipif(missing, reason=f"{name} is not installed")])


needs_ort = [pytest.mark.onnxruntime, pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None,
                                                         reason="onnxruntime is not installed")]


def inference(options: str, name: str = "face_inference") -> CalculatorRunner:
    return CalculatorRunner(f"name: {name}\ncalculator: InferenceCalculator\noptions: {options}")


def run_tensors(runner: CalculatorRunner, tensors: list[Tensors]) -> list[Tensors]:
    return [p.payload for p in runner.run({"TENSORS": tensors})["TENSORS"]]


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100, 100)))


def read_frames(path, every: int = 1) -> list[np.ndarray]:
    # OpenCV decodes, as tests/data/mediapipe_reference did, so the pixels match the reference's.
    cap, frames, i = cv2.VideoCapture(str(path)), [], 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            return frames
        if i % every == 0:
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        i += 1


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    astronaut = cv2.cvtColor(cv2.imread(str(require(astronaut_image))), cv2.COLOR_BGR2RGB)
    return [astronaut] + read_frames(require(carphone_clip), every=30)


def to_tensors(images: list[np.ndarray], size: int, **options) -> list[Tensors]:
    opts = ", ".join(f"{k}: {v}" for k, v in {"output_width": size, "output_height": size, **options}.items())
    runner = CalculatorRunner(f"calculator: ImageToTensorCalculator\noptions: {{{opts}}}")
    return [p.payload for p in runner.run({"IMAGE": [Frame(i) for i in images]})["TENSORS"]]


@pytest.fixture(scope="module")
def tensors(images) -> dict[str, list[Tensors]]:
    return {model: to_tensors(images, size) for model, (size, _) in MODELS.items()}


@pytest.fixture(scope="module")
def reference(tensors) -> dict[str, list[Tensors]]:
    """ONNX Runtime's outputs: the engine the others are compared with."""
    pytest.importorskip("onnxruntime")
    return {model: run_tensors(inference(f"{{model: {files}, engine: onnxruntime}}"), tensors[model])
            for model, (_, files) in MODELS.items()}


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("engine", [engine_param(e) for e in ENGINE_MODULES])
def test_every_engine_agrees_with_onnxruntime(engine, model, tensors, reference, caplog):
    size, files = MODELS[model]
    caplog.set_level(logging.INFO)
    outputs = run_tensors(inference(f"{{model: {files}, engine: [{engine}], input_shape: [1, {size}, {size}, 3]}}"),
                          tensors[model])
    chosen = [r.getMessage() for r in caplog.records if "runs" in r.getMessage()]
    suffix = ".tflite" if engine == "litert" else ".onnx"
    assert len(chosen) == 1 and f"engine {engine} " in chosen[0] and chosen[0].endswith(suffix), chosen
    boxes = {"short_range": 896, "full_range": 2304}[model]
    for got, want in zip(outputs, reference[model], strict=True):
        assert [a.shape for a in got.arrays] == [(1, boxes, 16), (1, boxes, 1)]
        if engine != "litert":  # the .tflite files keep their own tensor names (Identity, ...)
            assert got.names == ("regressors", "classificators")
        for g, w in zip(got.arrays, want.arrays, strict=True):
            assert np.abs(g - w).max() < 1e-3
        assert np.abs(sigmoid(got[1]) - sigmoid(want[1])).max() < 1e-3
    assert sigmoid(outputs[0][1]).max() > 0.9  # the astronaut's face is found


@pytest.mark.slow
@pytest.mark.parametrize("model, score_tolerance", [("short_range", 0.003), ("full_range", 0.01)])
def test_graph_reproduces_mediapipe_face_scores(model, score_tolerance):
    """ImageToTensor -> Inference in one graph gives the best face score per carphone frame that MediaPipe's own
    face detection gave (tests/data/mediapipe_reference); a cv2.resize letterbox would be off by up to 0.14."""
    pytest.importorskip("onnxruntime")
    size, files = MODELS[model]
    ref = [json.loads(line) for line in require(lambda: mediapipe_reference("carphone", model)).open()]
    graph = Graph.from_string(f"""
        inputs: [input_video]
        outputs: [detection_tensors]
        nodes:
          - name: image_to_tensor
            calculator: ImageToTensorCalculator
            inputs: {{IMAGE: input_video}}
            outputs: {{TENSORS: input_tensors}}
            options: {{output_width: {size}, output_height: {size}}}
          - name: inference
            calculator: InferenceCalculator
            inputs: {{TENSORS: input_tensors}}
            outputs: {{TENSORS: detection_tensors}}
            options: {{model: {files}, input_shape: [1, {size}, {size}, 3]}}
    """)
    frames = read_frames(require(carphone_clip))
    out = graph.run({"input_video": [Frame(f) for f in frames]}, outputs=["detection_tensors"])
    scores = np.array([sigmoid(p.payload[1]).max() for p in out["detection_tensors"]])
    want = np.array([max(d["score"] for d in line["detections"]) for line in ref])
    assert len(scores) == len(want) == 120
    diff = np.abs(scores - want)
    assert diff.mean() < score_tolerance / 3 and diff.max() < 2 * score_tolerance, (diff.mean(), diff.max())


def _original(excinfo) -> BaseException:
    exc = excinfo.value
    return exc.original if isinstance(exc, CalculatorError) else exc


@pytest.fixture
def absent_engine():
    """A real registration of an engine whose runtime is not installed (what a user without it sees)."""

    @register_engine
    class AbsentEngine(Engine):
        name = "absent_runtime"
        module = "framegraph_absent_runtime"
        formats = (".onnx",)
        install_hint = 'pip install "framegraph-absent-runtime"'

    yield "absent_runtime"
    unregister_engine("absent_runtime")


@pytest.mark.parametrize("_", [pytest.param(None, marks=needs_ort)])
def test_missing_engine_without_fallback_says_how_to_install_it(_, absent_engine, tensors):
    runner = inference(f"{{model: {MODELS['short_range'][1]}, engine: [{absent_engine}, onnxruntime], "
                       "allow_fallback: false}")
    with pytest.raises(CalculatorError) as excinfo:
        run_tensors(runner, tensors["short_range"][:1])
    err = _original(excinfo)
    assert isinstance(err, EngineUnavailableError) and isinstance(err, ImportError)
    message = str(err)
    assert message.startswith('node "face_inference": engine \'absent_runtime\' is not installed, so it cannot load '
                              "face_detection_short_range.onnx")
    assert 'pip install "framegraph-absent-runtime"' in message
    assert "installed engines: " in message and "onnxruntime" in message and "\n" not in message
    assert "set allow_fallback: true" in message


@pytest.mark.parametrize("_", [pytest.param(None, marks=needs_ort)])
def test_fallback_goes_to_the_next_engine_and_warns(_, absent_engine, tensors, reference, caplog):
    caplog.set_level(logging.INFO)
    runner = inference(f"{{model: {MODELS['short_range'][1]}, engine: [{absent_engine}, onnxruntime]}}")
    outputs = run_tensors(runner, tensors["short_range"][:1])
    np.testing.assert_array_equal(outputs[0][1], reference["short_range"][0][1])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ['node "face_inference": engine absent_runtime unavailable (not installed; pip install '
                        '"framegraph-absent-runtime"); falling back to onnxruntime']
    assert any("engine onnxruntime" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


@pytest.mark.parametrize("_", [pytest.param(None, marks=needs_ort)])
def test_an_engine_without_a_file_it_loads_is_an_error_or_a_fallback(_, tensors, caplog):
    onnx_only = MODELS["short_range"][1][:1]
    with pytest.raises(GraphValidationError) as excinfo:
        run_tensors(inference(f"{{model: {onnx_only}, engine: [litert]}}"), tensors["short_range"][:1])
    assert ('node "face_inference" (InferenceCalculator): engine \'litert\' loads .tflite files but model lists '
            "face_detection_short_range.onnx") in str(excinfo.value)
    caplog.set_level(logging.INFO)
    run_tensors(inference(f"{{model: {onnx_only}, engine: [litert, onnxruntime]}}"), tensors["short_range"][:1])
    assert any("engine onnxruntime" in r.getMessage() for r in caplog.records)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ['node "face_inference": engine litert unavailable (it loads .tflite files, the model is '
                        "face_detection_short_range.onnx); falling back to onnxruntime"]


class _Context:
    """What open() reads of its context, for a calculator built in Python (no graph, no validator)."""

    def __init__(self, name: str = "face_inference"):
        self.node_name = name
        self.logger = logging.getLogger(f"framegraph.{name}")


def test_missing_model_file_names_the_paths_tried(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calculator = InferenceCalculator(InferenceCalculator.Options(model=("assets/models/no_such_model.onnx",)))
    with pytest.raises(ModelError) as excinfo:
        calculator.open(_Context())
    err = excinfo.value
    assert isinstance(err, ValueError)
    message = str(err)
    assert message.startswith('node "face_inference": model file assets/models/no_such_model.onnx not found; '
                              "looked in ")
    assert str(tmp_path) in message  # the current directory first
    assert str(importlib.util.find_spec("pipelines").origin).rsplit("/pipelines/", 1)[0] in message
    # In a graph the validator looks the file up, before anything opens.
    with pytest.raises(GraphValidationError, match="option 'model': file assets/models/no_such_model.onnx not "
                                                   "found; looked in "):
        run_tensors(inference("{model: assets/models/no_such_model.onnx}"), [])


def test_a_relative_model_path_of_a_calculator_built_in_python_is_found_in_the_graph_libraries(tmp_path,
                                                                                              monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)  # not the checkout: the file comes from framegraph's own graph library
    calculator = InferenceCalculator(InferenceCalculator.Options(model=(MODELS["short_range"][1][0],)))
    calculator.open(_Context())
    try:
        assert calculator._session.model_path.is_absolute()
        assert calculator._session.model_path.name == "face_detection_short_range.onnx"
    finally:
        calculator.close(None)


@pytest.mark.parametrize("engine", [engine_param(e) for e in ENGINE_MODULES])
def test_wrong_input_shape_is_refused_when_the_graph_is_validated(engine):
    files = MODELS["short_range"][1]
    with pytest.raises(GraphValidationError) as excinfo:
        run_tensors(inference(f"{{model: {files}, engine: [{engine}], input_shape: [1, 192, 192, 3]}}"), [])
    (issue,) = excinfo.value.issues  # only the file this engine loads
    model = "face_detection_short_range" + (".tflite" if engine == "litert" else ".onnx")
    assert str(issue).startswith(f'<CalculatorRunner>:{issue.line}: node "face_inference" (InferenceCalculator): '
                                 f"model {model} expects input [1,128,128,3] but the graph feeds [1,192,192,3]")
    assert "output_width: 128, output_height: 128" in str(issue)
    # NCHW for an NHWC model is taken (transposed at run time), at validation as at open
    assert InferenceCalculator.check(InferenceCalculator.Options(
        model=tuple(str(ROOT / f) for f in files), engine=engine, input_shape=(1, 3, 128, 128))) == []


@pytest.mark.parametrize("engine", [engine_param(e) for e in ENGINE_MODULES])
def test_wrong_input_shape_is_refused_at_open_without_the_validator(engine):
    files = MODELS["short_range"][1]
    calculator = InferenceCalculator(InferenceCalculator.Options(model=tuple(files), engine=engine,
                                                                 input_shape=(1, 192, 192, 3)))
    with pytest.raises(ModelError) as excinfo:
        calculator.open(_Context())
    model = "face_detection_short_range" + (".tflite" if engine == "litert" else ".onnx")
    assert str(excinfo.value).startswith(f'node "face_inference": model {model} expects input [1,128,128,3] but the '
                                         "graph feeds [1,192,192,3]")
    calculator.close(None)


@pytest.mark.parametrize("engine", [engine_param(e) for e in ENGINE_MODULES])
def test_nchw_input_is_transposed_to_the_model_layout(engine, images, caplog):
    files = MODELS["short_range"][1]
    nhwc = to_tensors(images[:2], 128)
    nchw = to_tensors(images[:2], 128, layout="NCHW")
    assert nchw[0][0].shape == (1, 3, 128, 128)
    before = [t[0].copy() for t in nchw]
    caplog.set_level(logging.INFO)
    got = run_tensors(inference(f"{{model: {files}, engine: [{engine}], input_shape: [1, 3, 128, 128]}}"), nchw)
    want = run_tensors(inference(f"{{model: {files}, engine: [{engine}]}}"), nhwc)
    for g, w in zip(got, want, strict=True):
        for a, b in zip(g.arrays, w.arrays, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)
    transposing = [r for r in caplog.records if "transposing" in r.getMessage()]
    assert len(transposing) == 1  # decided once, not per frame
    for t, b in zip(nchw, before, strict=True):
        np.testing.assert_array_equal(t[0], b)  # the input packets are left alone


@pytest.mark.parametrize("_", [pytest.param(None, marks=needs_ort)])
def test_a_tensor_of_the_wrong_size_at_run_time_names_node_model_and_shapes(_, tensors):
    files = MODELS["short_range"][1]
    with pytest.raises(CalculatorError) as excinfo:
        run_tensors(inference(f"{{model: {files}}}"), tensors["full_range"][:1])
    assert excinfo.value.method == "process" and isinstance(_original(excinfo), ModelError)
    assert ('node "face_inference": model face_detection_short_range.onnx input 0 expects '
            "[1,128,128,3] but got [1,192,192,3]") in str(excinfo.value)
    with pytest.raises(CalculatorError, match="expects dtype float32 but got float64"):
        run_tensors(inference(f"{{model: {files}}}"), [Tensors((np.zeros((1, 128, 128, 3)),))])


@pytest.mark.openvino
def test_openvino_runs_in_f32_unless_asked_otherwise(tensors, caplog):
    if importlib.util.find_spec("openvino") is None:  # the engine imports it, with its telemetry off
        pytest.skip("openvino is not installed")
    caplog.set_level(logging.INFO)
    run_tensors(inference(f"{{model: {MODELS['short_range'][1]}, engine: openvino, threads: 1}}"),
                tensors["short_range"][:1])
    (line,) = [r.getMessage() for r in caplog.records if "engine openvino" in r.getMessage()]
    assert "INFERENCE_PRECISION_HINT f32" in line and "threads 1" in line


def test_bad_options_are_refused_when_the_graph_is_loaded():
    model = MODELS["short_range"][1][0]
    with pytest.raises(GraphValidationError, match="unknown engine 'onxruntime'. Did you mean 'onnxruntime'"):
        inference(f"{{model: {model}, engine: [onxruntime]}}").run({"TENSORS": []})
    with pytest.raises(GraphValidationError, match="missing required option 'model'"):
        inference("{engine: [onnxruntime]}").run({"TENSORS": []})
    with pytest.raises(GraphValidationError, match="precision must be one of f32, f16, bf16"):
        inference(f"{{model: {model}, precision: int8}}").run({"TENSORS": []})
