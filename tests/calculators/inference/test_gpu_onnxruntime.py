"""ONNX Runtime on GPUs: what `device: cuda` / `device: tensorrt` ask of ONNX Runtime (checked everywhere with a
stand-in session), and on a machine with onnxruntime-gpu and an NVIDIA GPU, both BlazeFace models against the
CPU provider."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from calculators.inference.engines import EngineOptions, get_engine
from calculators.inference.engines.onnxruntime_engine import OnnxRuntimeEngine
from pipelines.engines import EngineOptionError
from pipelines.errors import EngineUnavailableError

pytestmark = [pytest.mark.onnxruntime, pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None,
                                                           reason="onnxruntime is not installed")]

ROOT = Path(__file__).resolve().parents[3]
MODELS = {"short_range": ROOT / "assets/models/face_detection_short_range.onnx",
          "full_range": ROOT / "assets/models/face_detection_full_range.onnx"}
ENGINE = get_engine("onnxruntime")


def available() -> list[str]:
    import onnxruntime as ort

    return ort.get_available_providers()


class FakeSession:
    """Records what the engine asks ONNX Runtime for; runs on `runs_on` (as ORT does when a provider fails)."""

    created: list[dict] = []
    runs_on: list[str] | None = None

    def __init__(self, path, sess_options=None, providers=None, provider_options=None):
        names = [p if isinstance(p, str) else p[0] for p in providers]
        FakeSession.created.append({"providers": names, "provider_options": provider_options,
                                    "options": sess_options})
        self._providers = FakeSession.runs_on or names
        self._options = dict(zip(names, provider_options or [{} for _ in names]))

    def get_providers(self):
        return self._providers

    def get_provider_options(self):
        return {p: {k: str(v) for k, v in self._options.get(p, {}).items()} for p in self._providers}

    def get_inputs(self):
        return []

    def get_outputs(self):
        return []


@pytest.fixture()
def fake_gpu(monkeypatch, tmp_path):
    import onnxruntime as ort

    monkeypatch.setenv("FRAMEGRAPH_CACHE", str(tmp_path))
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", FakeSession)
    FakeSession.created, FakeSession.runs_on = [], None
    return tmp_path


def config_entry(created: dict, key: str) -> str:
    try:
        return created["options"].get_session_config_entry(key)
    except Exception:  # ORT raises when the key was never set
        return ""


def test_devices_lists_gpu_providers_onnx_runtime_has(fake_gpu):
    assert ENGINE.devices() == ["cpu", "cuda", "tensorrt"]


def test_cuda_runs_on_the_cuda_provider_alone_with_cpu_fallback_disabled(fake_gpu):
    session = ENGINE.load(MODELS["short_range"], EngineOptions(device="cuda:1"))
    (created,) = FakeSession.created
    assert created["providers"] == ["CUDAExecutionProvider"]
    assert created["provider_options"] == [{"device_id": 1}]
    assert config_entry(created, "session.disable_cpu_ep_fallback") == "1"
    assert session.device == "cuda:1"


def test_tensorrt_takes_f16_and_caches_its_engines_under_the_conversion_cache(fake_gpu):
    session = ENGINE.load(MODELS["short_range"], EngineOptions(device="tensorrt", precision="f16"))
    (created,) = FakeSession.created
    assert created["providers"] == ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    trt, cuda = created["provider_options"]
    assert trt["trt_fp16_enable"] is True and trt["trt_engine_cache_enable"] is True
    cache = Path(trt["trt_engine_cache_path"])
    assert cache.is_dir() and fake_gpu / "engines" / "onnxruntime-tensorrt" in cache.parents
    assert cache.name.endswith("-f16") and cache.parent.name.startswith("ort")
    assert cuda == {"device_id": 0}
    assert session.device == "tensorrt" and "f16" in session.details


CPU_FALLBACK = OnnxRuntimeEngine.Options(cpu_fallback=True)


def test_cpu_fallback_only_when_its_option_allows_it(fake_gpu):
    ENGINE.load(MODELS["short_range"], EngineOptions(device="cuda", own=CPU_FALLBACK))
    (created,) = FakeSession.created
    assert created["providers"] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert config_entry(created, "session.disable_cpu_ep_fallback") in ("", "0")


def test_a_gpu_provider_that_does_not_start_is_an_error_not_a_quiet_cpu_run(fake_gpu):
    FakeSession.runs_on = ["CPUExecutionProvider"]  # what ORT does when CUDA or cuDNN libraries are missing
    with pytest.raises(EngineUnavailableError, match="CUDAExecutionProvider did not start .the session runs on "
                                                     "CPUExecutionProvider.*cpu_fallback: true"):
        ENGINE.load(MODELS["short_range"], EngineOptions(device="cuda"))
    ENGINE.load(MODELS["short_range"], EngineOptions(device="cuda", own=CPU_FALLBACK))  # allowed


@pytest.mark.parametrize("device, precision, message", [
    ("cuda", "f16", "precision 'f16' is not supported on device 'cuda'"),
    ("cpu", "f16", "precision 'f16' is not supported on device 'cpu'"),
    ("npu", "f32", r"device 'npu' is not one it takes. Valid: cpu, cuda\[:N\], tensorrt\[:N\]"),
])
def test_refusals(device, precision, message):
    with pytest.raises(EngineOptionError, match=message):
        ENGINE.load(MODELS["short_range"], EngineOptions(device=device, precision=precision))


@pytest.mark.parametrize("device, message", [
    ("cuda:x", "device 'cuda:x' is not NAME or NAME:N"),
    ("cpu:0", "device 'cpu:0': cpu takes no index"),
    ("rocm", "unknown device 'rocm'"),
])
def test_devices_outside_the_grammar_are_refused(device, message):
    with pytest.raises(ValueError, match=message):
        EngineOptions(device=device)


@pytest.mark.skipif("CUDAExecutionProvider" in (available() if importlib.util.find_spec("onnxruntime") else []),
                    reason="onnxruntime-gpu is installed here")
def test_cuda_without_onnxruntime_gpu_says_what_to_install():
    with pytest.raises(EngineUnavailableError, match="execution provider CUDAExecutionProvider is not available "
                                                     "here .*pip install onnxruntime-gpu"):
        ENGINE.load(MODELS["short_range"], EngineOptions(device="cuda"))


# --- on an NVIDIA GPU with onnxruntime-gpu -----------------------------------------------------------------

def _gpu_devices() -> list[str]:
    if importlib.util.find_spec("onnxruntime") is None:
        return []
    return [d for d in ("cuda", "tensorrt") if d in ENGINE.devices()]


GPU_DEVICES = _gpu_devices()


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100, 100)))


@pytest.mark.gpu
@pytest.mark.parametrize("device, precision", [("cuda", "f32"), ("tensorrt", "f32"), ("tensorrt", "f16")])
@pytest.mark.parametrize("model", list(MODELS))
def test_gpu_outputs_match_the_cpu_provider(model, device, precision, tmp_path, monkeypatch):
    if device not in GPU_DEVICES:
        pytest.skip(f"ONNX Runtime has no {device} device here (onnxruntime-gpu with "
                    f"{'TensorRT' if device == 'tensorrt' else 'CUDA'} libraries and an NVIDIA GPU needed)")
    monkeypatch.setenv("FRAMEGRAPH_CACHE", str(tmp_path))
    size = 128 if model == "short_range" else 192
    rng = np.random.default_rng(0)
    arrays = [rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32) for _ in range(4)]
    cpu = ENGINE.load(MODELS[model], EngineOptions())
    gpu = ENGINE.load(MODELS[model], EngineOptions(device=device, precision=precision))
    assert gpu.device == device
    tolerance = (0.05, 1e-3) if precision == "f32" else (1.0, 2e-2)
    for array in arrays:
        want, got = cpu.run([array]), gpu.run([array])
        assert np.abs(got[0] - want[0]).max() < tolerance[0]
        assert np.abs(sigmoid(got[1]) - sigmoid(want[1])).max() < tolerance[1]
    if device == "tensorrt":
        assert any(p.is_file() for p in (tmp_path / "engines" / "onnxruntime-tensorrt").rglob("*"))
