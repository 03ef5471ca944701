"""The TensorRT engine: registry and refusals everywhere; on an NVIDIA GPU with tensorrt installed, both
BlazeFace models against ONNX Runtime on the CPU (f32 and f16), the plan cache, and the face subgraph."""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from media import astronaut_image, carphone_clip, require
from metrics import iou

from calculators.inference.engines import EngineOptions, get_engine, known_engines
from pipelines import Graph, load_graph
from pipelines.engines import Device, EngineChoice, EngineOptionError, configure_engine
from pipelines.errors import CalculatorError
from pipelines.testing import CalculatorRunner
from pipelines.types import Frame, Tensors

ROOT = Path(__file__).resolve().parents[3]
MODELS = {"short_range": (128, ROOT / "assets/models/face_detection_short_range.onnx"),
          "full_range": (192, ROOT / "assets/models/face_detection_full_range.onnx")}
ENGINE = get_engine("tensorrt")


def _gpu_reason() -> str | None:
    """Why the GPU tests cannot run here, or None."""
    if not ENGINE.is_installed():
        return ("tensorrt is not installed (pip install 'framegraph[tensorrt]': tensorrt and cuda-python, on a "
                "machine with an NVIDIA GPU and driver)")
    try:
        if not ENGINE.devices():
            return "no NVIDIA GPU visible to CUDA here (tensorrt is installed)"
    except Exception as exc:  # a broken driver or CUDA install: say what it was
        return f"CUDA does not start here: {type(exc).__name__}: {exc}"
    return None


GPU_REASON = _gpu_reason()
needs_gpu = pytest.mark.skipif(GPU_REASON is not None, reason=GPU_REASON or "")


def test_tensorrt_is_a_known_engine_that_loads_onnx():
    assert "tensorrt" in known_engines()
    assert ENGINE.formats == (".onnx",)
    assert ENGINE.install_hint == 'pip install "framegraph[tensorrt]"'


def test_naming_and_checking_tensorrt_imports_neither_tensorrt_nor_cuda():
    code = textwrap.dedent("""
        import json, sys
        from calculators.inference.engines import get_engine
        engine = get_engine("tensorrt")
        engine.is_installed(), engine.version()
        print(json.dumps([m for m in ("tensorrt", "torch", "cuda.bindings.runtime", "cuda.cudart")
                          if m in sys.modules]))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("device", ["cpu", "npu"])
def test_devices_other_than_cuda_are_refused_before_anything_is_imported(device):
    with pytest.raises(EngineOptionError, match=fr"engine 'tensorrt': device '{device}' is not one it takes. Valid: "
                                                r"cuda\[:N\], gpu\[:N\]"):
        ENGINE.load(MODELS["short_range"][1], EngineOptions(device=device))
    with pytest.raises(ValueError, match="device 'gpu:x' is not NAME or NAME:N. Valid: cpu, cuda"):
        EngineOptions(device="gpu:x")


def test_the_default_device_is_cuda():
    configured, errors = configure_engine(EngineChoice("tensorrt"))
    assert errors == [] and configured.options.device == Device("cuda")
    assert configure_engine(EngineChoice("tensorrt", device="gpu:1"))[0].options.device == Device("gpu", 1)


def test_unknown_engine_options_and_precisions_are_refused():
    assert configure_engine(EngineChoice("tensorrt", options={"workspace": 1}))[1] == [
        "engine 'tensorrt': unknown option 'workspace'. Did you mean 'workspace_mb'? Valid: workspace_mb, "
        "builder_optimization_level, input_shapes, cuda_api, verbose"]
    assert configure_engine(EngineChoice("tensorrt", options={"builder_optimization_level": 9}))[1] == [
        "engine 'tensorrt': invalid options: builder_optimization_level must be 0-5, got 9"]
    with pytest.raises(EngineOptionError, match=r"precision 'bf16' is not one it runs at. Valid: f32, f16"):
        ENGINE.load(MODELS["short_range"][1], EngineOptions(device="cuda", precision="bf16"))


@pytest.mark.skipif(ENGINE.is_installed(), reason="tensorrt is installed here")
def test_a_graph_naming_tensorrt_where_it_is_missing_says_how_to_install_it():
    runner = CalculatorRunner("name: face_inference\ncalculator: InferenceCalculator\n"
                              "options: {model: assets/models/face_detection_short_range.onnx, engine: [tensorrt], "
                              "device: cuda}")
    with pytest.raises(CalculatorError) as info:
        runner.run({"TENSORS": [Tensors((np.zeros((1, 128, 128, 3), np.float32),))]})
    message = str(info.value.original)
    assert ("engine 'tensorrt' is not installed, so it cannot load face_detection_short_range.onnx; installed "
            "engines:") in message
    assert 'hint: pip install "framegraph[tensorrt]"' in message


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100, 100)))


@pytest.mark.skipif(importlib.util.find_spec("onnxconverter_common") is None
                    or importlib.util.find_spec("onnxruntime") is None,
                    reason="onnxconverter-common (the f16 converter used on TensorRT 11+) or onnxruntime is missing")
@pytest.mark.parametrize("model", list(MODELS))
def test_the_f16_model_for_tensorrt_11_keeps_float32_io_and_the_results(model):
    """TensorRT 11 dropped BuilderFlag.FP16; f16 there means building a float16 ONNX model, checked on the CPU."""
    import onnxruntime as ort

    from calculators.inference.engines.tensorrt_engine import _fp16_onnx

    size, path = MODELS[model]
    fp32 = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    fp16 = ort.InferenceSession(_fp16_onnx(path), providers=["CPUExecutionProvider"])
    assert [i.type for i in fp16.get_inputs()] == ["tensor(float)"]
    assert [o.type for o in fp16.get_outputs()] == ["tensor(float)", "tensor(float)"]
    x = np.random.default_rng(0).uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
    want, got = fp32.run(None, {"input": x}), fp16.run(None, {"input": x})
    assert np.abs(got[0] - want[0]).max() < 0.2  # input pixels; measured 0.04
    assert np.abs(sigmoid(got[1]) - sigmoid(want[1])).max() < 2e-3  # measured 2.4e-4


# --- on an NVIDIA GPU --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def inputs() -> dict[str, list[np.ndarray]]:
    cv2 = pytest.importorskip("cv2", reason="ImageToTensorCalculator needs opencv")
    images = [cv2.cvtColor(cv2.imread(str(require(astronaut_image))), cv2.COLOR_BGR2RGB)]
    cap = cv2.VideoCapture(str(require(carphone_clip)))
    for i in range(120):
        ok, bgr = cap.read()
        if not ok:
            break
        if i % 10 == 0:
            images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    out = {}
    for model, (size, _) in MODELS.items():
        runner = CalculatorRunner(f"calculator: ImageToTensorCalculator\n"
                                  f"options: {{output_width: {size}, output_height: {size}}}")
        out[model] = [p.payload.arrays[0] for p in runner.run({"IMAGE": [Frame(i) for i in images]})["TENSORS"]]
    return out


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FRAMEGRAPH_CACHE", str(tmp_path))
    return tmp_path / "engines" / "tensorrt"


@pytest.mark.tensorrt
@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("precision, tolerance", [("f32", (0.05, 1e-3)), ("f16", (1.0, 2e-2))])
@pytest.mark.parametrize("model", list(MODELS))
def test_outputs_match_onnx_runtime_on_the_cpu(model, precision, tolerance, inputs, cache):
    ort_engine = get_engine("onnxruntime")
    reference = ort_engine.load(MODELS[model][1], EngineOptions())
    session = ENGINE.load(MODELS[model][1], EngineOptions(device="cuda", precision=precision))
    try:
        assert [s.name for s in session.outputs] == ["regressors", "classificators"]  # ONNX order
        assert session.inputs[0].shape == (1, MODELS[model][0], MODELS[model][0], 3)  # NHWC, as ORT takes it
        assert session.device == "cuda:0"
        worst_regressors = worst_scores = 0.0
        for array in inputs[model]:
            want, got = reference.run([array]), session.run([array])
            assert [g.shape for g in got] == [w.shape for w in want]
            worst_regressors = max(worst_regressors, float(np.abs(got[0] - want[0]).max()))
            worst_scores = max(worst_scores, float(np.abs(sigmoid(got[1]) - sigmoid(want[1])).max()))
    finally:
        session.close()
        reference.close()
    assert worst_regressors < tolerance[0], f"regressors differ by {worst_regressors} (input pixels)"
    assert worst_scores < tolerance[1], f"scores differ by {worst_scores}"


@pytest.mark.tensorrt
@pytest.mark.gpu
@needs_gpu
def test_the_plan_is_built_once_and_cached_per_precision_and_gpu(cache, caplog):
    model = MODELS["short_range"][1]
    with caplog.at_level(logging.INFO, logger="framegraph.engines"):
        ENGINE.load(model, EngineOptions(device="cuda")).close()
        built = [r for r in caplog.records if r.getMessage().startswith("converting")]
        ENGINE.load(model, EngineOptions(device="cuda")).close()
    assert len(built) == 1
    assert len([r for r in caplog.records if r.getMessage().startswith("converting")]) == 1  # the second: cached
    (entry,) = [p for p in cache.glob("*/*") if (p / ".complete").exists()]
    assert entry.name.split("-")[1:3][0] == "f32" and "-sm" in entry.name
    assert (entry / "model.engine").stat().st_size > 0
    assert json.loads((entry / "io.json").read_text())["outputs"] == ["regressors", "classificators"]


@pytest.mark.tensorrt
@pytest.mark.gpu
@needs_gpu
def test_the_face_graph_on_tensorrt_agrees_with_onnx_runtime(cache, tmp_path):
    found = {}
    for engine, device in (("onnxruntime", "cpu"), ("tensorrt", "cuda")):
        out = tmp_path / f"{engine}.jsonl"
        config = load_graph(ROOT / "graphs/face_detect.yaml", overrides=[
            f"source.source={require(carphone_clip)}", f"detections_writer.path={out}",
            "detections_writer.enabled=true", "display.enabled=false"])
        for node in config.nodes:
            if node.calculator == "InferenceCalculator":
                node.options.update(engine=[engine], device=device)
        Graph(config).run(timeout=300)
        found[engine] = [json.loads(line)["detections"] for line in out.read_text().splitlines()]
    assert len(found["tensorrt"]) == len(found["onnxruntime"]) == 120
    for ours, reference in zip(found["tensorrt"], found["onnxruntime"]):
        assert len(ours) == len(reference)
        for a, b in zip(ours, reference):
            assert iou(a["xyxy"], b["xyxy"]) >= 0.95
