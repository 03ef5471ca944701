"""The torch, ncnn and MNN engines: BlazeFace converted from ONNX at first use, cached, and run on real images
with the outputs ONNX Runtime gives; their own file formats loaded directly; the face graph end to end."""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from calculators.inference.engines import EngineOptions, get_engine
from media import astronaut_image, astronaut_pan_clip, require
from metrics import iou
from pipelines.engines import EngineOptionError
from pipelines.errors import EngineUnavailableError, ModelError
from pipelines.testing import CalculatorRunner
from pipelines.types import Frame, Tensors

pytestmark = pytest.mark.slow  # several seconds: real clips through every engine

cv2 = pytest.importorskip("cv2", reason="ImageToTensorCalculator needs opencv (pip install 'framegraph[video]')")

ROOT = Path(__file__).resolve().parents[3]
MODELS = {  # name -> (input size, anchors, [onnx, tflite])
    "short_range": (128, 896, ["assets/models/face_detection_short_range.onnx",
                               "assets/models/face_detection_short_range.tflite"]),
    "full_range": (192, 2304, ["assets/models/face_detection_full_range.onnx",
                               "assets/models/face_detection_full_range_sparse.tflite"]),
}
GRAPHS = {"short_range": "graphs/face_detect.yaml", "full_range": "graphs/face_detect_full_range.yaml"}
# engine -> what it needs here: its runtime, then what converts ONNX for it
NEEDS = {"torch": ("torch", "onnx2torch", "onnx"), "ncnn": ("ncnn", "pnnx", "onnx"), "mnn": ("MNN", "onnx")}


def missing(engine: str) -> list[str]:
    return [m for m in NEEDS[engine] if importlib.util.find_spec(m) is None]


def engine_param(engine: str):
    absent = missing(engine)
    reason = f"{engine}: {', '.join(absent)} not installed (pip install 'framegraph[{engine}]')"
    return pytest.param(engine, marks=[getattr(pytest.mark, engine), pytest.mark.skipif(bool(absent), reason=reason)])


ENGINES = [engine_param(e) for e in NEEDS]
needs_ort = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None,
                               reason="onnxruntime, the reference, is not installed (framegraph[onnxruntime])")


@pytest.fixture(scope="module", autouse=True)
def engine_cache(tmp_path_factory):
    """Conversions of this module go to a folder of its own, not the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("framegraph_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRAMEGRAPH_CACHE", str(folder))
        yield folder


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100, 100)))


def inference(options: str) -> CalculatorRunner:
    return CalculatorRunner(f"name: face_inference\ncalculator: InferenceCalculator\noptions: {options}")


def run_tensors(runner: CalculatorRunner, tensors: list[Tensors]) -> list[Tensors]:
    return [p.payload for p in runner.run({"TENSORS": tensors})["TENSORS"]]


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """The astronaut photo and three frames of the project's astronaut_pan clip, RGB."""
    frames = [cv2.cvtColor(cv2.imread(str(require(astronaut_image))), cv2.COLOR_BGR2RGB)]
    cap = cv2.VideoCapture(str(require(astronaut_pan_clip)))
    for i in range(90):
        ok, bgr = cap.read()
        if not ok:
            break
        if i % 30 == 0:
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return frames


@pytest.fixture(scope="module")
def tensors(images) -> dict[str, list[Tensors]]:
    """The models' inputs as the face graphs make them: ImageToTensorCalculator, letterboxed, [-1, 1]."""
    out = {}
    for model, (size, _, _) in MODELS.items():
        runner = CalculatorRunner(f"calculator: ImageToTensorCalculator\noptions: {{output_width: {size}, "
                                  f"output_height: {size}, keep_aspect_ratio: true, float_range: [-1.0, 1.0], "
                                  "border: zero}")
        out[model] = [p.payload for p in runner.run({"IMAGE": [Frame(i) for i in images]})["TENSORS"]]
    return out


@pytest.fixture(scope="module")
def reference(tensors) -> dict[str, list[Tensors]]:
    pytest.importorskip("onnxruntime")
    return {model: run_tensors(inference(f"{{model: {files}, engine: onnxruntime}}"), tensors[model])
            for model, (_, _, files) in MODELS.items()}


@needs_ort
@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("engine", ENGINES)
def test_engine_matches_onnxruntime_on_real_images(engine, model, tensors, reference, caplog):
    size, boxes, files = MODELS[model]
    caplog.set_level(logging.INFO)
    outputs = run_tensors(inference(f"{{model: {files}, engine: [{engine}], input_shape: [1, {size}, {size}, 3]}}"),
                          tensors[model])
    chosen = [r.getMessage() for r in caplog.records if " runs " in r.getMessage()]
    assert len(chosen) == 1 and f"engine {engine} " in chosen[0] and chosen[0].endswith(".onnx"), chosen
    regressors = scores = 0.0
    for got, want in zip(outputs, reference[model], strict=True):
        assert got.names == ("regressors", "classificators")
        assert [a.shape for a in got.arrays] == [(1, boxes, 16), (1, boxes, 1)]
        assert all(a.dtype == np.float32 for a in got.arrays)
        regressors = max(regressors, float(np.abs(got[0] - want[0]).max()))
        scores = max(scores, float(np.abs(sigmoid(got[1]) - sigmoid(want[1])).max()))
    assert regressors < 1e-3 and scores < 1e-3, (f"{engine}/{model}: max |regressors - ORT| {regressors:.2e}, "
                                                 f"max |sigmoid(classificators) - ORT| {scores:.2e}")
    assert sigmoid(outputs[0][1]).max() > 0.9  # the astronaut's face is found


@pytest.mark.parametrize("engine", ENGINES)
def test_conversion_runs_once_then_comes_from_the_cache(engine, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FRAMEGRAPH_CACHE", str(tmp_path))
    caplog.set_level(logging.INFO, logger="framegraph.engines")
    model = ROOT / MODELS["short_range"][2][0]
    first = get_engine(engine).load(model, EngineOptions())
    converting = [r.getMessage() for r in caplog.records if r.getMessage().startswith("converting ")]
    assert len(converting) == 1 and f"for {engine} " in converting[0], converting
    (done,) = tmp_path.glob(f"engines/{engine}/*/*/.complete")
    stamp = done.stat().st_mtime_ns
    caplog.clear()
    second = get_engine(engine).load(model, EngineOptions())
    assert not [r for r in caplog.records if r.getMessage().startswith("convert")]
    assert done.stat().st_mtime_ns == stamp and len(list(tmp_path.glob(f"engines/{engine}/*/*"))) == 1
    x = np.random.default_rng(0).uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)
    for a, b in zip(first.run([x]), second.run([x]), strict=True):
        np.testing.assert_array_equal(a, b)
    first.close()
    second.close()


@pytest.fixture(scope="module")
def ort_detections(tmp_path_factory):
    """ONNX Runtime's detections per graph, made once."""
    made: dict[str, list[dict]] = {}

    def get(model: str, cache: Path) -> list[dict]:
        if model not in made:
            out = tmp_path_factory.mktemp("ort") / "d.jsonl"
            result = run_graph(GRAPHS[model], "onnxruntime", out, cache)
            assert result.returncode == 0, result.stderr
            made[model] = [json.loads(line) for line in out.read_text().splitlines()]
        return made[model]

    return get


def run_graph(graph: str, engine: str, out: Path, cache: Path):
    command = [sys.executable, "-m", "pipelines", graph, "--engine", engine, "--max-frames", "10", "--detections",
               str(out), "--no-display"]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "FRAMEGRAPH_CACHE": str(cache)})


@needs_ort
@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("engine", ENGINES)
def test_face_graph_end_to_end_agrees_with_onnxruntime(engine, model, ort_detections, engine_cache, tmp_path):
    pytest.importorskip("av")
    out = tmp_path / "d.jsonl"
    result = run_graph(GRAPHS[model], engine, out, engine_cache)
    assert result.returncode == 0, result.stderr
    assert f"engine {engine} " in result.stderr
    ours, theirs = [json.loads(line) for line in out.read_text().splitlines()], ort_detections(model, engine_cache)
    assert [f["frame"] for f in ours] == list(range(10)) == [f["frame"] for f in theirs]
    assert sum(len(f["detections"]) for f in theirs) >= 5
    for mine, ref in zip(ours, theirs):
        assert len(mine["detections"]) == len(ref["detections"]), f"frame {mine['frame']}"
        for a in mine["detections"]:
            b = max(ref["detections"], key=lambda d: iou(a["xyxy"], d["xyxy"]))
            assert iou(a["xyxy"], b["xyxy"]) > 0.99 and abs(a["score"] - b["score"]) <= 0.011
            assert np.abs(np.subtract(a["keypoints"], b["keypoints"])).max() <= 0.5  # source pixels


def test_naming_the_engines_imports_no_runtime():
    code = textwrap.dedent("""
        import json, sys
        from calculators.inference.engines import get_engine
        rows = [(n, get_engine(n).is_installed(), get_engine(n).version(), get_engine(n).formats)
                for n in ("torch", "ncnn", "mnn")]
        heavy = sorted(m for m in ("torch", "onnx", "onnx2torch", "ncnn", "pnnx", "MNN", "_tools", "_mnncengine")
                       if m in sys.modules)
        print(json.dumps(heavy))
    """)
    out = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("engine, device, error", [
    pytest.param("torch", "cuda", EngineUnavailableError, marks=engine_param("torch").marks),
    pytest.param("ncnn", "vulkan", EngineUnavailableError, marks=engine_param("ncnn").marks),
    pytest.param("mnn", "cuda", EngineOptionError, marks=engine_param("mnn").marks),  # a device it never takes
])
def test_a_device_that_is_not_there_is_refused(engine, device, error):
    if device in get_engine(engine).devices():
        pytest.skip(f"{engine} has {device} here")
    with pytest.raises(error, match=f"engine '{engine}'.*{device}"):
        get_engine(engine).load(ROOT / MODELS["short_range"][2][0], EngineOptions(device=device))


def _converted(engine: str, name: str) -> Path:
    """The cache entry of the short-range model for `engine` (converting it if needed)."""
    get_engine(engine).load(ROOT / MODELS["short_range"][2][0], EngineOptions()).close()
    cache = Path(os.environ["FRAMEGRAPH_CACHE"])
    (found,) = [p for p in cache.glob(f"engines/{engine}/*/*/{name}") if p.parent.name.startswith("d66e8a85dae4ebf4")]
    return found


@pytest.mark.ncnn
@pytest.mark.skipif(bool(missing("ncnn")), reason="ncnn or pnnx is not installed")
def test_ncnn_loads_a_param_file_directly(tmp_path):
    param = _converted("ncnn", "model.ncnn.param")
    shutil.copy(param, tmp_path / "face.param")
    shutil.copy(param.with_suffix(".bin"), tmp_path / "face.bin")
    engine = get_engine("ncnn")
    with pytest.raises(ModelError, match="input_shapes"):
        engine.load(tmp_path / "face.param", EngineOptions())
    bare = engine.load(tmp_path / "face.param",
                       EngineOptions(threads=1, own=engine.Options(input_shapes=((1, 128, 128, 3),))))
    assert [(s.name, s.shape) for s in bare.outputs] == [("out0", (1, 896, 16)), ("out1", (1, 896, 1))]
    assert "threads 1" in bare.details
    shutil.copy(param.with_suffix(".io.json"), tmp_path / "face.io.json")  # the names, from the ONNX model
    described = engine.load(tmp_path / "face.param", EngineOptions())
    assert [s.name for s in described.outputs] == ["regressors", "classificators"]
    x = np.random.default_rng(1).uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)
    kept = x.copy()
    for a, b in zip(bare.run([x]), described.run([x]), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x, kept)  # the caller's array is not written to


@pytest.mark.ncnn
@pytest.mark.skipif(importlib.util.find_spec("ncnn") is None, reason="ncnn is not installed")
def test_ncnn_without_pnnx_says_how_to_get_it(monkeypatch):
    from calculators.inference.engines import ncnn_engine

    monkeypatch.setattr(ncnn_engine, "_pnnx_executable", lambda: None)
    with pytest.raises(EngineUnavailableError, match="pip install --no-deps pnnx"):
        get_engine("ncnn").load(ROOT / MODELS["short_range"][2][0], EngineOptions())


@needs_ort
@pytest.mark.ncnn
@pytest.mark.skipif(bool(missing("ncnn")), reason="ncnn or pnnx is not installed")
def test_ncnn_refuses_a_conversion_that_disagrees_with_onnxruntime(tmp_path, monkeypatch):
    from calculators.inference.engines import ncnn_engine

    # A wrong DepthToSpace mapping (CRD for DCR) stands in for a pnnx that converts badly (before 20260409).
    monkeypatch.setattr(ncnn_engine, "_DEPTH_TO_SPACE_MODES", {"DCR": 0, "CRD": 1})
    monkeypatch.setenv("FRAMEGRAPH_CACHE", str(tmp_path))
    with pytest.raises(ModelError, match="converted face_detection_full_range.onnx wrongly: output regressors"):
        get_engine("ncnn").load(ROOT / MODELS["full_range"][2][0], EngineOptions())
    assert not list(tmp_path.glob("engines/ncnn/*/*/.complete"))  # nothing cached


@pytest.mark.mnn
@pytest.mark.skipif(bool(missing("mnn")), reason="MNN or onnx is not installed")
def test_mnn_loads_an_mnn_file_directly_and_never_loads_mnn_tools(tmp_path, tensors):
    converted_file = _converted("mnn", "model.mnn")
    shutil.copy(converted_file, tmp_path / "face.mnn")
    # The ONNX model's input/output order (MNN 3.0's converter sorts outputs by name).
    shutil.copy(converted_file.with_suffix(".io.json"), tmp_path / "face.io.json")
    direct = run_tensors(inference(f"{{model: [{tmp_path / 'face.mnn'}], engine: mnn}}"), tensors["short_range"][:1])
    converted = run_tensors(inference(f"{{model: [{MODELS['short_range'][2][0]}], engine: mnn}}"),
                            tensors["short_range"][:1])
    assert direct[0].names == ("regressors", "classificators")
    for a, b in zip(direct[0].arrays, converted[0].arrays, strict=True):
        np.testing.assert_array_equal(a, b)
    # MNN.tools imports MNN's usage logger, which pip-installs a logging SDK and posts to a remote endpoint.
    assert not [m for m in sys.modules if m.startswith(("MNN.tools", "aliyun"))]


@pytest.mark.torch
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
@pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")
def test_torch_loads_exported_programs_and_plain_torchscript(tmp_path):
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, image):
            features = self.conv(image.permute(0, 3, 1, 2))
            return features, features.mean(dim=(2, 3))

    torch.manual_seed(0)
    model = Tiny().eval()
    x = torch.rand(1, 8, 8, 3)
    with torch.no_grad():
        want = [t.numpy() for t in model(x)]
        torch.export.save(torch.export.export(model, (x,)), str(tmp_path / "tiny.pt2"))
        torch.jit.save(torch.jit.trace(model, (x,)), str(tmp_path / "tiny.ts"))
    engine = get_engine("torch")

    exported = engine.load(tmp_path / "tiny.pt2", EngineOptions())
    assert [(s.name, s.shape) for s in exported.inputs] == [("image", (1, 8, 8, 3))]
    assert [s.shape for s in exported.outputs] == [(1, 4, 8, 8), (1, 4)]
    with pytest.raises(ModelError, match="input_shapes"):
        engine.load(tmp_path / "tiny.ts", EngineOptions())
    scripted = engine.load(tmp_path / "tiny.ts", EngineOptions(own=engine.Options(input_shapes=((1, 8, 8, 3),))))
    assert [(s.name, s.shape) for s in scripted.outputs] == [("output_0", (1, 4, 8, 8)), ("output_1", (1, 4))]
    for session in (exported, scripted):
        for got, expected in zip(session.run([x.numpy()]), want, strict=True):
            np.testing.assert_allclose(got, expected, atol=1e-6)
    (tmp_path / "weights.pt").write_bytes(b"not a torchscript archive")
    with pytest.raises(ModelError, match="not a TorchScript archive"):
        engine.load(tmp_path / "weights.pt", EngineOptions(own=engine.Options(input_shapes=((1, 8, 8, 3),))))
