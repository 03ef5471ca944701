"""ONNX Runtime: CPU by default; CUDA and TensorRT through their execution providers when installed."""
from __future__ import annotations

from pathlib import Path
from collections.abc import Sequence

import numpy as np

from . import Engine, EngineOptions, Session, TensorSpec

# device -> providers in preference order; ORT falls back along the list itself.
_DEVICE_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
           "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(int32)": np.int32,
           "tensor(int64)": np.int64, "tensor(bool)": np.bool_}
_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
           "all": "ORT_ENABLE_ALL"}
_EXTRA = ("providers", "provider_options", "graph_optimization_level", "inter_op_num_threads", "allow_spinning")


class OnnxRuntimeEngine(Engine):
    """`engine_options`: providers (list, overrides `device`), provider_options (list of dicts, one per
    provider), graph_optimization_level ("disable" | "basic" | "extended" | "all"), inter_op_num_threads,
    allow_spinning (default false)."""

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
        if options.precision != "f32":
            raise self.unavailable(f"precision {options.precision!r} is not supported (ONNX Runtime runs a model "
                                   "at the precision it is stored in)", "use precision: f32, or openvino")
        providers = list(extra.get("providers") or _DEVICE_PROVIDERS.get(options.device.lower(), []))
        if not providers:
            raise self.unavailable(f"unknown device {options.device!r}",
                                   f"use one of {', '.join(_DEVICE_PROVIDERS)} or engine_options.providers")
        available = ort.get_available_providers()
        missing = [p for p in providers if p not in available]
        if missing:
            # ORT would only warn and quietly run on the CPU; a graph that asked for a GPU must hear about it.
            raise self.unavailable(f"execution provider {', '.join(missing)} is not available here "
                                   f"(available: {', '.join(available)})",
                                   "pip install onnxruntime-gpu (instead of onnxruntime) for CUDA/TensorRT")
        so = ort.SessionOptions()
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
                                    provider_options=extra.get("provider_options"))
        return _OrtSession(sess, Path(model_path), options.threads)


class _OrtSession(Session):
    def __init__(self, sess, model_path: Path, threads: int):
        self._sess = sess
        inputs = [_spec(i) for i in sess.get_inputs()]
        outputs = [_spec(o) for o in sess.get_outputs()]
        provider = sess.get_providers()[0]
        device = next((d for d, p in _DEVICE_PROVIDERS.items() if p[0] == provider), provider)
        details = f"{provider}, intra-op threads {threads or 'default'}"
        super().__init__("onnxruntime", model_path, device, inputs, outputs, details)
        self._in_names = [s.name for s in inputs]
        self._out_names = [s.name for s in outputs]

    def run(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self._sess.run(self._out_names, dict(zip(self._in_names, arrays)))

    def close(self) -> None:
        self._sess = None


def _spec(node) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in node.shape)
    return TensorSpec(node.name, shape, np.dtype(_DTYPES.get(node.type, object)))
