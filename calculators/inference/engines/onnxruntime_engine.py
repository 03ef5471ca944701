"""ONNX Runtime: CPU by default; CUDA and TensorRT through their execution providers (onnxruntime-gpu).

`device: cuda` runs on CUDAExecutionProvider, `device: tensorrt` on TensorrtExecutionProvider (with CUDA for
the nodes TensorRT does not take); `cuda:N` / `tensorrt:N` pick GPU N. Neither falls back to the CPU unless
the option `cpu_fallback: true` says it may: ONNX Runtime would otherwise run any node its GPU providers
cannot take on the CPU, and run the whole model there when a provider fails to start, with only a log line.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipelines.engines import Engine, EngineOptions, Session, TensorSpec

from .conversion_cache import cache_root, file_sha256

# device -> providers in preference order (GPU devices: without the CPU, which cpu_fallback adds).
_DEVICE_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider"],
}
_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
           "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(int32)": np.int32,
           "tensor(int64)": np.int64, "tensor(bool)": np.bool_}
_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
           "all": "ORT_ENABLE_ALL"}


class OnnxRuntimeEngine(Engine):
    """ONNX Runtime. `threads` sets intra_op_num_threads (0: ORT's default). `precision: f16` is taken on
    `device: tensorrt` only (trt_fp16_enable); its engines are cached under the conversion cache
    ($FRAMEGRAPH_CACHE/engines/onnxruntime-tensorrt/...)."""

    @dataclass(frozen=True)
    class Options:
        #: Execution providers by name, in order; they replace what `device` picks.
        providers: tuple[str, ...] = ()
        #: One dict of provider options per entry of `providers`.
        provider_options: tuple[dict[str, Any], ...] = ()
        #: ORT's graph optimisation level (default: ORT's own, all).
        graph_optimization_level: Literal["disable", "basic", "extended", "all"] | None = None
        #: Threads between independent nodes (0: ORT's default).
        inter_op_num_threads: int = 0
        #: Let ORT's pool threads busy-wait between runs (fast for inference alone, steals cores in a pipeline).
        allow_spinning: bool = False
        #: Let a GPU device run nodes (or, when a provider fails to start, the whole model) on the CPU.
        cpu_fallback: bool = False

        def __post_init__(self):
            if self.provider_options and len(self.provider_options) != len(self.providers):
                raise ValueError(f"provider_options lists {len(self.provider_options)} dict(s) for "
                                 f"{len(self.providers)} provider(s); give one per entry of providers")
            if self.inter_op_num_threads < 0:
                raise ValueError(f"inter_op_num_threads must be >= 0 (0: ORT's default), got "
                                 f"{self.inter_op_num_threads}")

    name = "onnxruntime"
    formats = (".onnx", ".ort")
    batches = True
    module = "onnxruntime"
    distributions = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml")
    install_hint = 'pip install "framegraph[onnxruntime]"'
    device_forms = ("cpu", "cuda[:N]", "tensorrt[:N]")
    precisions = ("f32", "f16")

    def devices(self) -> list[str]:
        import onnxruntime as ort

        available = set(ort.get_available_providers())
        return [device for device, providers in _DEVICE_PROVIDERS.items() if providers[0] in available]

    def problems(self, options: EngineOptions) -> list[str]:
        found = super().problems(options)
        if options.precision == "f16" and options.device.kind != "tensorrt":
            found.append(f"precision 'f16' is not supported on device '{options.device}' (ONNX Runtime runs a "
                         "model at the precision it is stored in; only its TensorRT provider builds fp16 kernels); "
                         "use precision: f32, device: tensorrt with f16, or the openvino or tensorrt engine")
        return found

    def load(self, model_path: Path, options: EngineOptions) -> Session:
        own: OnnxRuntimeEngine.Options = self.checked(options)
        import onnxruntime as ort

        device, index = options.device.kind, options.device.index or 0
        cpu_fallback = own.cpu_fallback
        providers = list(own.providers or _DEVICE_PROVIDERS[device])
        if not own.providers and cpu_fallback and device != "cpu":
            providers.append("CPUExecutionProvider")
        available = ort.get_available_providers()
        missing = [p for p in providers if p not in available]
        if missing:
            # ORT would only warn and quietly run on the CPU; a graph that asked for a GPU must hear about it.
            raise self.unavailable(f"execution provider {', '.join(missing)} is not available here "
                                   f"(available: {', '.join(available)})",
                                   "pip install onnxruntime-gpu (instead of onnxruntime) for CUDA/TensorRT")
        if own.providers:
            provider_options = [dict(p) for p in own.provider_options] or None
        else:
            provider_options = [self._provider_options(p, index, options, model_path, ort.__version__)
                                for p in providers]
        so = ort.SessionOptions()
        gpu = [p for p in providers if p in _GPU_PROVIDERS]
        if gpu and "CPUExecutionProvider" not in providers and not cpu_fallback:
            # Without this ORT places the nodes its GPU providers cannot run on the CPU, silently.
            so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        if options.threads:
            so.intra_op_num_threads = options.threads
        # ORT's pool threads busy-wait between runs by default. Inside a pipeline that steals the cores the
        # decoder and encoder need (measured: 1.7 s of CPU on a 250-frame 720p clip); the option
        # allow_spinning: true restores it for inference-only workloads.
        spinning = "1" if own.allow_spinning else "0"
        so.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        so.add_session_config_entry("session.inter_op.allow_spinning", spinning)
        if own.inter_op_num_threads:
            so.inter_op_num_threads = own.inter_op_num_threads
        if own.graph_optimization_level is not None:
            so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[own.graph_optimization_level])
        sess = ort.InferenceSession(str(model_path), sess_options=so, providers=providers,
                                    provider_options=provider_options)
        used = sess.get_providers()
        if gpu and used[0] != gpu[0] and not cpu_fallback:
            # A provider that fails to start (missing CUDA/cuDNN/TensorRT libraries) is only logged by ORT.
            raise self.unavailable(f"{gpu[0]} did not start (the session runs on {', '.join(used)}); ONNX "
                                   "Runtime's log above says why",
                                   "install the CUDA, cuDNN and TensorRT libraries this onnxruntime-gpu was built "
                                   "for, or set the option cpu_fallback: true")
        return _OrtSession(sess, Path(model_path), options.threads, options.precision)

    def _provider_options(self, provider: str, index: int, options: EngineOptions, model_path: Path,
                          ort_version: str) -> dict:
        if provider == "CUDAExecutionProvider":
            return {"device_id": index}
        if provider == "TensorrtExecutionProvider":
            # ORT names its engine files by model hash and GPU, but not by TensorRT version: keep the TensorRT
            # version (and ours) in the path so an upgrade never loads a stale plan.
            trt_version = _version("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11") or "system"
            folder = (cache_root() / "onnxruntime-tensorrt" / f"ort{ort_version}-trt{trt_version}"
                      / f"{file_sha256(Path(model_path))[:16]}-{options.precision}")
            folder.mkdir(parents=True, exist_ok=True)
            return {"device_id": index, "trt_fp16_enable": options.precision == "f16",
                    "trt_engine_cache_enable": True, "trt_engine_cache_path": str(folder),
                    "trt_timing_cache_enable": True, "trt_timing_cache_path": str(folder)}
        return {}


class _OrtSession(Session):
    # InferenceSession.run is thread-safe on the CPU provider; GPU providers share one device stream, so calls
    # there keep taking turns (and a GPU is not short of threads to begin with).
    def __init__(self, sess, model_path: Path, threads: int, precision: str = "f32"):
        self._sess = sess
        inputs = [_spec(i) for i in sess.get_inputs()]
        outputs = [_spec(o) for o in sess.get_outputs()]
        providers = sess.get_providers()
        device = next((d for d, p in _DEVICE_PROVIDERS.items() if p[0] == providers[0]), providers[0])
        device_id = sess.get_provider_options().get(providers[0], {}).get("device_id")
        if device != "cpu" and device_id not in (None, "0", 0):
            device = f"{device}:{device_id}"
        details = f"{', '.join(providers)}, {precision}, intra-op threads {threads or 'default'}"
        super().__init__("onnxruntime", model_path, device, inputs, outputs, details)
        self._in_names = [s.name for s in inputs]
        self._out_names = [s.name for s in outputs]
        self.concurrent = device == "cpu"

    def run(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self._sess.run(self._out_names, dict(zip(self._in_names, arrays)))

    def close(self) -> None:
        self._sess = None


def _version(*distributions: str) -> str | None:
    for dist in distributions:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def _spec(node) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in node.shape)
    return TensorSpec(node.name, shape, np.dtype(_DTYPES.get(node.type, object)))
