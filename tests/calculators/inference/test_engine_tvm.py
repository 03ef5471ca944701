"""The tvm engine: BlazeFace compiled for this CPU at first use, cached, and run through InferenceCalculator; its
outputs agree with ONNX Runtime's."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import time

import numpy as np
import pytest
from media import astronaut_image, carphone_clip, read_rgb_frames, require

from calculators.inference.engines import EngineOptions, get_engine, list_engines
from calculators.inference.engines.tvm_engine import TvmEngine
from pipelines.engines import EngineChoice, EngineOptionError, configure_engine
from pipelines.errors import EngineUnavailableError
from pipelines.testing import CalculatorRunner
from pipelines.types import Frame, Tensors

_MISSING = [m for m in ("tvm", "onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
pytestmark = [pytest.mark.slow, pytest.mark.tvm,
              pytest.mark.skipif(bool(_MISSING), reason=f"needs {', '.join(_MISSING)}: "
                                                        'pip install "framegraph[tvm,onnxruntime]"')]

MODELS = {"short_range": (128, 896), "full_range": (192, 2304)}  # name -> (input size, anchors)


def model_file(model: str) -> str:
    return f"assets/models/face_detection_{model}.onnx"


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100, 100)))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A conversion cache of this module's own: the first load in it compiles."""
    folder = tmp_path_factory.mktemp("framegraph-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRAMEGRAPH_CACHE", str(folder))
        yield folder / "engines" / "tvm"


@pytest.fixture(scope="module")
def tensors() -> dict[str, list[Tensors]]:
    """The astronaut and every 30th carphone frame, letterboxed by ImageToTensorCalculator as in the graphs."""
    pytest.importorskip("cv2", reason="ImageToTensorCalculator needs opencv (pip install 'framegraph[video]')")
    images = read_rgb_frames(require(astronaut_image)) + read_rgb_frames(require(carphone_clip), every=30)
    found = {}
    for model, (size, _) in MODELS.items():
        runner = CalculatorRunner(f"calculator: ImageToTensorCalculator\n"
                                  f"options: {{output_width: {size}, output_height: {size}}}")
        found[model] = [p.payload for p in runner.run({"IMAGE": [Frame(i) for i in images]})["TENSORS"]]
    return found


def run(options: str, tensors: list[Tensors]) -> list[Tensors]:
    runner = CalculatorRunner(f"name: face_inference\ncalculator: InferenceCalculator\noptions: {options}")
    return [p.payload for p in runner.run({"TENSORS": tensors})["TENSORS"]]


@pytest.mark.parametrize("model", list(MODELS))
def test_compiled_model_agrees_with_onnxruntime(model, cache, tensors, caplog):
    size, anchors = MODELS[model]
    caplog.set_level(logging.INFO)
    got = run(f"{{model: {model_file(model)}, engine: [tvm], input_shape: [1, {size}, {size}, 3]}}", tensors[model])
    want = run(f"{{model: {model_file(model)}, engine: [onnxruntime]}}", tensors[model])
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"converting face_detection_{model}.onnx for tvm ") for m in messages)
    chosen = [m for m in messages if " runs " in m and "engine tvm " in m]
    assert len(chosen) == 1 and "llvm -mcpu=" in chosen[0] and "schedule default" in chosen[0], chosen
    worst = [0.0, 0.0, 0.0]
    for g, w in zip(got, want, strict=True):
        assert g.names == ("regressors", "classificators")
        assert [a.shape for a in g.arrays] == [(1, anchors, 16), (1, anchors, 1)]
        assert all(a.dtype == np.float32 for a in g.arrays)
        worst = [max(worst[0], float(np.abs(g[0] - w[0]).max())), max(worst[1], float(np.abs(g[1] - w[1]).max())),
                 max(worst[2], float(np.abs(sigmoid(g[1]) - sigmoid(w[1])).max()))]
    print(f"tvm vs onnxruntime, {model}: regressors {worst[0]:.2e}, logits {worst[1]:.2e}, scores {worst[2]:.2e}")
    assert worst[0] < 1e-3 and worst[1] < 1e-3 and worst[2] < 1e-3
    assert sigmoid(got[0][1]).max() > 0.9  # the astronaut's face is found


def test_the_compiled_library_is_cached_per_model_tvm_version_and_cpu(cache, monkeypatch):
    import tvm
    from tvm.target import codegen

    engine = get_engine("tvm")
    engine.load(model_file("short_range"), EngineOptions()).close()  # compiled by the test above, or now
    entries = list(cache.glob(f"{tvm.__version__}-fg*/*-llvm-mcpu-{codegen.llvm_get_system_cpu()}-nhwc-pv1"))
    assert entries and all((e / "model.so").is_file() and (e / "io.json").is_file() for e in entries)

    def no_compiling(*_):
        raise AssertionError("a cached model was compiled again")

    monkeypatch.setattr(TvmEngine, "_compile", no_compiling)
    start = time.perf_counter()
    session = engine.load(model_file("short_range"), EngineOptions())
    assert time.perf_counter() - start < 1.0
    try:
        assert [str(s) for s in session.inputs] == ["input [1,128,128,3] float32"]
        assert [str(s) for s in session.outputs] == ["regressors [1,896,16] float32",
                                                     "classificators [1,896,1] float32"]
        outputs = session.run([np.zeros((1, 128, 128, 3), np.float32)])
        assert [o.shape for o in outputs] == [(1, 896, 16), (1, 896, 1)]
        assert all(o.flags.writeable and o.flags.owndata for o in outputs)
    finally:
        session.close()


def test_an_unknown_cpu_name_is_refused_before_compiling(cache):
    with pytest.raises(EngineOptionError, match=r"engine 'tvm': option mcpu: LLVM \d+ does not know CPU 'pentium9'"):
        get_engine("tvm").load(model_file("short_range"), EngineOptions(own=TvmEngine.Options(mcpu="pentium9")))


def test_a_missing_compiler_says_how_to_get_one(tmp_path, monkeypatch):
    import tvm.support.cc

    monkeypatch.setenv("FRAMEGRAPH_CACHE", str(tmp_path))
    monkeypatch.setattr(tvm.support.cc, "get_cc", lambda: None)
    with pytest.raises(EngineUnavailableError, match=r"no C/C\+\+ compiler found .* hint: install one"):
        get_engine("tvm").load(model_file("short_range"), EngineOptions())
    assert not list(tmp_path.rglob("model.so"))


@pytest.mark.parametrize("options, message", [
    (EngineOptions(device="cuda"), "device 'cuda' is not one it takes. Valid: cpu"),
    (EngineOptions(precision="f16"), "precision 'f16' is not one it runs at. Valid: f32"),
    (EngineOptions(own=TvmEngine.Options(schedule="tuned")),
     "option 'schedule': expected one of 'default', 'none', got 'tuned'"),
])
def test_what_the_engine_cannot_do_is_refused(options, message):
    with pytest.raises(EngineOptionError, match=message):
        get_engine("tvm").load(model_file("short_range"), options)


@pytest.mark.parametrize("entry, message", [
    (EngineChoice("tvm", options={"target": "cuda"}), "engine 'tvm': unknown option 'target'. Valid: mcpu, schedule"),
    (EngineChoice("tvm", options={"schedule": "tuned"}),
     "engine 'tvm': option 'schedule': expected one of 'default', 'none', got 'tuned'"),
    (EngineChoice("tvm", device="cuda"), "engine 'tvm': device 'cuda' is not one it takes. Valid: cpu"),
])
def test_what_the_engine_cannot_do_is_refused_when_the_graph_is_checked(entry, message):
    assert configure_engine(entry) == (None, [message])


def test_list_engines_reports_tvm():
    row = next(r for r in list_engines() if r["name"] == "tvm")
    assert row == {"name": "tvm", "installed": True, "version": importlib.metadata.version("apache-tvm"),
                   "devices": ["cpu"], "device_names": ["cpu"], "formats": [".onnx"], "options": ["mcpu", "schedule"],
                   "hint": 'pip install "framegraph[tvm]"', "error": ""}
