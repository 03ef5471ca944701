"""OpenVINO: reads ONNX or its own IR (.xml + .bin); CPU by default, GPU/NPU/AUTO where present."""
from __future__ import annotations

from pathlib import Path
from collections.abc import Sequence

import numpy as np

from . import Engine, EngineOptions, Session, TensorSpec

_PRECISIONS = ("f32", "f16", "bf16")
# Virtual devices that pick or combine real ones; OpenVINO checks them itself.
_META_DEVICES = ("AUTO", "HETERO", "MULTI", "BATCH")


class OpenVinoEngine(Engine):
    """`engine_options` are OpenVINO compile properties, passed as given (e.g. PERFORMANCE_HINT: LATENCY).

    INFERENCE_PRECISION_HINT is always set, from `precision` (default f32): without it OpenVINO computes in
    bf16 on CPUs that support it, which moved BlazeFace logits by up to 5 (assets/models/*.md)."""

    name = "openvino"
    formats = (".xml", ".onnx")
    module = "openvino"
    distributions = ("openvino",)
    install_hint = 'pip install "framegraph[openvino]"'

    def devices(self) -> list[str]:
        import openvino as ov

        return [d.lower() for d in ov.Core().available_devices]

    def load(self, model_path: Path, options: EngineOptions) -> Session:
        import openvino as ov

        if options.precision not in _PRECISIONS:
            raise self.unavailable(f"precision {options.precision!r} is not supported",
                                   f"use one of {', '.join(_PRECISIONS)}")
        core = ov.Core()
        device = options.device.upper()
        available = core.available_devices
        if not device.startswith(_META_DEVICES) and not any(d.split(".")[0] == device.split(".")[0]
                                                            for d in available):
            raise self.unavailable(f"device {options.device!r} is not available here "
                                   f"(available: {', '.join(d.lower() for d in available)})",
                                   "install the device's OpenVINO plugin and driver, or use device: cpu")
        config: dict = {"INFERENCE_PRECISION_HINT": options.precision}
        if options.threads and device == "CPU":
            config["INFERENCE_NUM_THREADS"] = options.threads
        config.update({str(k): v for k, v in options.extra.items()})
        compiled = core.compile_model(core.read_model(str(model_path)), device, config)
        return _OvSession(compiled, Path(model_path))


class _OvSession(Session):
    def __init__(self, compiled, model_path: Path):
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        inputs = [_spec(p) for p in compiled.inputs]
        outputs = [_spec(p) for p in compiled.outputs]
        devices = ",".join(compiled.get_property("EXECUTION_DEVICES")).lower()
        precision = _property(compiled, "INFERENCE_PRECISION_HINT")
        precision = getattr(precision, "get_type_name", lambda: precision)()  # ov.Type -> "f32"
        details = f"INFERENCE_PRECISION_HINT {precision}, threads {_property(compiled, 'INFERENCE_NUM_THREADS')}"
        super().__init__("openvino", model_path, devices, inputs, outputs, details)
        self._outputs = list(compiled.outputs)

    def run(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        # share_outputs=False (the default) copies results out of the request's buffers, which the next call
        # overwrites while downstream nodes may still hold the previous arrays.
        result = self._request.infer(list(arrays))
        return [result[port] for port in self._outputs]

    def close(self) -> None:
        self._request = self._compiled = None


def _spec(port) -> TensorSpec:
    shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    try:
        name = port.get_any_name()
    except RuntimeError:  # an unnamed tensor
        name = ""
    return TensorSpec(name, shape, np.dtype(port.get_element_type().to_dtype()))


def _property(compiled, key: str):
    try:
        return compiled.get_property(key)
    except RuntimeError:  # not every device reports every property
        return "default"
