"""OpenVINO: reads ONNX or its own IR (.xml + .bin); CPU by default, GPU/NPU and the virtual devices (AUTO,
HETERO, MULTI, BATCH) where present.

Devices: `cpu`, `gpu`, `gpu:N` (OpenVINO's GPU.N; `gpu.1` reads the same), `npu`, and `auto`, `hetero`,
`multi`, `batch`, which pick or combine the devices named in the option `candidates` (AUTO:GPU,CPU).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.engines import Engine, EngineOptions, Session, TensorSpec, parse_device

log = logging.getLogger("framegraph.engines")

# Virtual devices that pick or combine real ones; OpenVINO checks them itself.
_META_DEVICES = ("auto", "hetero", "multi", "batch")
_HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
# Compile properties set from typed settings: naming them in `properties` too would be ambiguous.
_TYPED = {"INFERENCE_PRECISION_HINT": "precision", "INFERENCE_NUM_THREADS": "threads",
          "PERFORMANCE_HINT": "performance_hint", "NUM_STREAMS": "num_streams"}


class OpenVinoEngine(Engine):
    """OpenVINO. `threads` sets INFERENCE_NUM_THREADS on the CPU (0: OpenVINO's default).

    INFERENCE_PRECISION_HINT is always set, from `precision` (default f32): without it OpenVINO computes in
    bf16 on CPUs that support it, which moved BlazeFace logits by up to 5 (assets/models/*.md).

    Compiled models are kept in OpenVINO's own model cache (CACHE_DIR) under framegraph's cache folder
    ($FRAMEGRAPH_CACHE, default ~/.cache/framegraph; `model_cache: false` turns it off): compiling took
    0.7-1.4 s per solution model on a 2-core VM, loading it from the cache 0.06-0.5 s. OpenVINO keys each entry by
    the model, the device and the settings, so a changed model or option compiles afresh."""

    @dataclass(frozen=True)
    class Options:
        #: PERFORMANCE_HINT: latency, throughput or cumulative_throughput (default: OpenVINO's, latency).
        performance_hint: str = ""
        #: NUM_STREAMS: inference streams (0: what the performance hint picks).
        num_streams: int = 0
        #: For device auto, hetero, multi or batch: the devices it picks from or splits over, in order.
        candidates: tuple[str, ...] = ()
        #: Other OpenVINO compile properties, passed as given (e.g. {CACHE_DIR: /tmp/ov_cache}).
        properties: dict[str, Any] = field(default_factory=dict)
        #: Keep compiled models in framegraph's cache folder (unless `properties` names a CACHE_DIR).
        model_cache: bool = True

        def __post_init__(self):
            if self.performance_hint and self.performance_hint.upper() not in _HINTS:
                raise ValueError(f"performance_hint must be one of {', '.join(h.lower() for h in _HINTS)}, "
                                 f"got {self.performance_hint!r}")
            if self.num_streams < 0:
                raise ValueError(f"num_streams must be >= 0 (0: the performance hint's choice), got "
                                 f"{self.num_streams}")
            for name in self.candidates:
                device = parse_device(name, OpenVinoEngine.device_forms)
                if device.kind in _META_DEVICES:
                    raise ValueError(f"candidates: {name!r} is itself a virtual device; name real ones (cpu, gpu, "
                                     "gpu:N, npu)")
            clash = sorted(k for k in self.properties if str(k).upper() in _TYPED)
            if clash:
                raise ValueError("properties: " + ", ".join(f"{k} is set by {_TYPED[str(k).upper()]}" for k in clash))

    name = "openvino"
    formats = (".xml", ".onnx")
    batches = True
    module = "openvino"
    distributions = ("openvino",)
    install_hint = 'pip install "framegraph[openvino]"'
    device_forms = ("cpu", "gpu[:N]", "npu[:N]", "auto", "hetero", "multi", "batch")
    precisions = ("f32", "f16", "bf16")

    def devices(self) -> list[str]:
        ov = _openvino()

        return [d.lower() for d in ov.Core().available_devices]

    def problems(self, options: EngineOptions) -> list[str]:
        found = super().problems(options)
        own = options.own
        kind = options.device.kind
        if own is not None and isinstance(own, self.Options):
            if kind in ("hetero", "multi", "batch") and not own.candidates:
                found.append(f"device '{kind}' needs the devices it combines in the option candidates "
                             "(e.g. [gpu, cpu])")
            if own.candidates and kind not in _META_DEVICES:
                found.append(f"the option candidates is for device auto, hetero, multi or batch, not '{kind}'")
        return found

    def load(self, model_path: Path, options: EngineOptions) -> Session:
        own: OpenVinoEngine.Options = self.checked(options)
        ov = _openvino()

        core = ov.Core()
        device = _ov_name(options.device.kind, options.device.index)
        available = core.available_devices
        if options.device.kind not in _META_DEVICES and not any(d.split(".")[0] == device.split(".")[0]
                                                                for d in available):
            raise self.unavailable(f"device '{options.device}' is not available here "
                                   f"(available: {', '.join(d.lower() for d in available)})",
                                   "install the device's OpenVINO plugin and driver, or use device: cpu")
        if own.candidates:
            device += ":" + ",".join(_ov_name(d.kind, d.index) for d in map(parse_device, own.candidates))
        config: dict = {"INFERENCE_PRECISION_HINT": options.precision}
        if options.threads and device == "CPU":
            config["INFERENCE_NUM_THREADS"] = options.threads
        if own.performance_hint:
            config["PERFORMANCE_HINT"] = own.performance_hint.upper()
        if own.num_streams:
            config["NUM_STREAMS"] = own.num_streams
        config.update({str(k): v for k, v in own.properties.items()})
        cache = _cache_dir() if own.model_cache and "CACHE_DIR" not in config else None
        if cache is not None:
            try:  # from the path, so that a cached model is not even read
                compiled = core.compile_model(str(model_path), device, {**config, "CACHE_DIR": str(cache)})
                return _OvSession(compiled, Path(model_path))
            except RuntimeError as exc:  # a cache folder it cannot write (full disk, read-only): compile as is
                log.debug("openvino: model cache %s not used for %s: %s", cache, model_path, exc)
        compiled = core.compile_model(core.read_model(str(model_path)), device, config)
        return _OvSession(compiled, Path(model_path))


def _openvino():
    """`import openvino` with its usage telemetry off. Unless the user opted out, importing OpenVINO sends an event
    to Google Analytics from a forked process (openvino_telemetry, opt-out by default), and framegraph makes no
    network calls at run time: with `openvino_telemetry` unimportable while OpenVINO loads, it takes its own stub.
    (If the process imported OpenVINO before us, that already happened.)"""
    import sys

    if "openvino" in sys.modules:
        import openvino

        return openvino
    blocked = "openvino_telemetry" not in sys.modules
    if blocked:
        sys.modules["openvino_telemetry"] = None  # `import openvino_telemetry` raises ImportError
    try:
        import openvino
    finally:
        if blocked and "openvino_telemetry" in sys.modules and sys.modules["openvino_telemetry"] is None:
            del sys.modules["openvino_telemetry"]  # others may import it later; OpenVINO keeps its stub
    return openvino


def _cache_dir() -> Path | None:
    from .conversion_cache import cache_root

    folder = cache_root() / "openvino"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.debug("openvino: no model cache (%s)", exc)
        return None
    return folder


def _ov_name(kind: str, index: int | None) -> str:
    return kind.upper() + (f".{index}" if index is not None else "")


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
