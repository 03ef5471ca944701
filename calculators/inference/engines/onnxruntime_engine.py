"""ONNX Runtime: CPU by default; CUDA and TensorRT through their execution providers (onnxruntime-gpu).

`device: cuda` runs on CUDAExecutionProvider, `device: tensorrt` on TensorrtExecutionProvider (with CUDA for
the nodes TensorRT does not take); `cuda:N` / `tensorrt:N` pick GPU N. Neither falls back to the CPU unless
`engine_options.cpu_fallback: true` says it may: ONNX Runtime would otherwise run any node its GPU providers
cannot take on the CPU, and run the whole model there when a provider fails to start, with only a log line.
"""
from __future__ import annotations

from importlib import metadata
from pathlib import Path
from collections.abc import Sequence

import numpy as np

from . import Engine, EngineOptions, Session, TensorSpec
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
_EXTRA = ("providers", "provider_options", "graph_optimization_level", "inter_op_num_threads", "allow_spinning",
          "cpu_fallback")


class OnnxRuntimeEngine(Engine):
    """`engine_options`: providers (list, overrides `device`), provider_options (list of dicts, one per
    provider), graph_optimization_level ("disable" | "basic" | "extended" | "all"), inter_op_num_threads,
    allow_spinning (default false), cpu_fallback (default false: a GPU device runs wholly on the GPU or fails).

    `precision: f16` is taken on `device: tensorrt` only (trt_fp16_enable); its engines are cached under the
    conversion cache ($FRAMEGRAPH_CACHE/engines/onnxruntime-tensorrt/...)."""

    name = "onnxruntime"
    formats = (".onnx", ".ort")
    module = "onnxruntime"
    distributions = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml")
    install_hint = 'pip install "framegraph[onnxruntime]"'

    def devices(self) -> list[str]:
        import onnxruntime as ort

        available = set(ort.get_available_providers())
        return [device for device, providers in _DEVICE_PROVIDERS.items() if providers[0] in available]

    def load(self, model_path: Path, options: EngineOptions) -> Session:
        import onnxruntime as ort

        extra = dict(options.extra)
        self.check_extra(extra, _EXTRA)
        device, _, index = options.device.lower().partition(":")
        if device not in _DEVICE_PROVIDERS or (index and (device == "cpu" or not index.isdigit())):
            raise self.unavailable(f"unknown device {options.device!r}",
                                   "use cpu, cuda, cuda:N, tensorrt, tensorrt:N or engine_options.providers")
        if options.precision != "f32" and not (options.precision == "f16" and device == "tensorrt"):
            raise self.unavailable(f"precision {options.precision!r} is not supported on device {device!r} (ONNX "
                                   "Runtime runs a model at the precision it is stored in; only its TensorRT "
                                   "provider can build fp16 kernels)",
                                   "use precision: f32, device: tensorrt with f16, or the openvino or tensorrt "
                                   "engine")
        cpu_fallback = bool(extra.get("cpu_fallback", False))
        providers = list(extra.get("providers") or _DEVICE_PROVIDERS[device])
        if not extra.get("providers") and cpu_fallback and device != "cpu":
            providers.append("CPUExecutionProvider")
        names = [p if isinstance(p, str) else p[0] for p in providers]
        available = ort.get_available_providers()
        missing = [p for p in names if p not in available]
        if missing:
            # ORT would only warn and quietly run on the CPU; a graph that asked for a GPU must hear about it.
            raise self.unavailable(f"execution provider {', '.join(missing)} is not available here "
                                   f"(available: {', '.join(available)})",
                                   "pip install onnxruntime-gpu (instead of onnxruntime) for CUDA/TensorRT")
        provider_options = extra.get("provider_options")
        if provider_options is None and not extra.get("providers"):
            provider_options = [self._provider_options(p, int(index or 0), options, model_path, ort.__version__)
                                for p in names]
        so = ort.SessionOptions()
        gpu = [p for p in names if p in _GPU_PROVIDERS]
        if gpu and "CPUExecutionProvider" not in names and not cpu_fallback:
            # Without this ORT places the nodes its GPU providers cannot run on the CPU, silently.
            so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        if options.threads:
            so.intra_op_num_threads = options.threads
        # ORT's pool threads busy-wait between runs by default. Inside a pipeline that steals the cores the
        # decoder and encoder need (measured: 1.7 s of CPU on a 250-frame 720p clip); the engine_options key
        # allow_spinning: true restores it for inference-only workloads.
        spinning = "1" if extra.get("allow_spinning", False) else "0"
        so.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        so.add_session_config_entry("session.inter_op.allow_spinning", spinning)
        if "inter_op_num_threads" in extra:
            so.inter_op_num_threads = int(extra["inter_op_num_threads"])
        if "graph_optimization_level" in extra:
            level = str(extra["graph_optimization_level"]).lower()
            if level not in _LEVELS:
                raise ValueError(f"engine 'onnxruntime': engine_options.graph_optimization_level: expected one of "
                                 f"{', '.join(_LEVELS)}, got {level!r}")
            so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[level])
        sess = ort.InferenceSession(str(model_path), sess_options=so, providers=providers,
                                    provider_options=provider_options)
        used = sess.get_providers()
        if gpu and used[0] != gpu[0] and not cpu_fallback:
            # A provider that fails to start (missing CUDA/cuDNN/TensorRT libraries) is only logged by ORT.
            raise self.unavailable(f"{gpu[0]} did not start (the session runs on {', '.join(used)}); ONNX "
                                   "Runtime's log above says why",
                                   "install the CUDA, cuDNN and TensorRT libraries this onnxruntime-gpu was built "
                                   "for, or set engine_options.cpu_fallback: true")
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
