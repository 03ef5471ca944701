"""The open inference-engine registry: what turns a model file into a runnable `Session`.

Built-in engines (ONNX Runtime, OpenVINO, LiteRT) live one per module beside this file and are imported
only when their name is looked up; each imports its runtime package only inside `devices()` and `load()`,
so naming, listing and checking engines (`is_installed`, `version`) imports nothing heavy and
`run-graph --help` stays instant. Third-party packages add engines with
``[project.entry-points."framegraph.engines"] tensorrt = "my_pkg.trt:TensorRTEngine"``, or at run time with
``@register_engine``.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from pipelines.errors import EngineUnavailableError, RegistryError

__all__ = [
    "ENTRY_POINT_GROUP", "Engine", "EngineOptions", "Session", "TensorSpec", "engines", "get_engine",
    "installed_engines", "known_engines", "list_engines", "register_engine", "unregister_engine",
]

ENTRY_POINT_GROUP = "framegraph.engines"

# name -> "module:Class", imported on first look-up.
_BUILTINS = {
    "onnxruntime": "calculators.inference.engines.onnxruntime_engine:OnnxRuntimeEngine",
    "openvino": "calculators.inference.engines.openvino_engine:OpenVinoEngine",
    "litert": "calculators.inference.engines.litert_engine:LiteRtEngine",
    "torch": "calculators.inference.engines.torch_engine:TorchEngine",
    "ncnn": "calculators.inference.engines.ncnn_engine:NcnnEngine",
    "mnn": "calculators.inference.engines.mnn_engine:MnnEngine",
    "tensorrt": "calculators.inference.engines.tensorrt_engine:TensorRtEngine",
    "tvm": "calculators.inference.engines.tvm_engine:TvmEngine",
    "kserve": "calculators.inference.engines.kserve_engine:KServeEngine",
}

_lock = threading.RLock()
_engines: dict[str, "Engine"] = {}
_entry_points: dict[str, metadata.EntryPoint] | None = None


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as the model declares it. `None` in `shape` is a dynamic dimension."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype

    def accepts(self, shape: Sequence[int]) -> bool:
        return len(shape) == len(self.shape) and all(w is None or w == g for w, g in zip(self.shape, shape))

    def __str__(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} [{dims}] {np.dtype(self.dtype).name}"


@dataclass(frozen=True)
class EngineOptions:
    """What InferenceCalculator asks of an engine. `extra` is engine-specific (`engine_options:` in YAML)."""

    device: str = "cpu"
    threads: int = 0  # 0: the engine's own default
    precision: str = "f32"
    extra: Mapping[str, Any] = field(default_factory=dict)


class Session:
    """A model loaded by an engine. One caller at a time (a calculator instance is never called concurrently)."""

    def __init__(self, engine: str, model_path: Path, device: str, inputs: Sequence[TensorSpec],
                 outputs: Sequence[TensorSpec], details: str = ""):
        self.engine = engine
        self.model_path = Path(model_path)
        self.device = device
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.details = details  # for the log: provider, precision, threads

    def run(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run on one array per input, in model order; return one new array per output, in model order."""
        raise NotImplementedError(f"{type(self).__name__} must implement run()")

    def close(self) -> None:
        pass


class Engine:
    """Base class of an engine. Subclasses set the class attributes and implement `load` (and `devices`)."""

    name: ClassVar[str] = ""
    formats: ClassVar[tuple[str, ...]] = ()  # file suffixes it loads, lower case with the dot
    module: ClassVar[str] = ""  # top-level import name, found without importing it
    distributions: ClassVar[tuple[str, ...]] = ()  # pip distributions that provide `module`, for version()
    install_hint: ClassVar[str] = ""

    def is_installed(self) -> bool:
        try:
            return importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):
            return False

    def version(self) -> str | None:
        for dist in self.distributions:
            try:
                return metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
        return None

    def devices(self) -> list[str]:
        """Devices this engine can run on here, lower case ("cpu", "cuda", "gpu"). May import the runtime."""
        return ["cpu"]

    def load(self, model_path: Path, options: EngineOptions) -> Session:
        raise NotImplementedError(f"engine {self.name!r} must implement load()")

    def unavailable(self, what: str, hint: str) -> EngineUnavailableError:
        return EngineUnavailableError(f"engine {self.name!r}: {what}; hint: {hint}")

    def check_extra(self, extra: Mapping[str, Any], allowed: Sequence[str]) -> None:
        unknown = sorted(set(extra) - set(allowed))
        if unknown:
            raise ValueError(f"engine {self.name!r}: unknown engine_options {', '.join(unknown)}; "
                             f"expected any of: {', '.join(allowed) or '(none)'}")


def register_engine(cls: type | None = None, *, name: str | None = None, replace: bool = False):
    """Register an Engine subclass under `name` (default: its `name`). Usable as a class decorator."""

    def add(klass: type) -> type:
        if not (isinstance(klass, type) and issubclass(klass, Engine)):
            raise TypeError(f"register_engine expects an Engine subclass, got {klass!r}")
        key = name or klass.name
        if not key:
            raise ValueError(f"register_engine: {klass.__qualname__} has no name; set name = '...' or pass name=")
        with _lock:
            existing = _engines.get(key)
            if existing is not None and type(existing) is not klass and not replace:
                raise RegistryError(f"engine name '{key}' is already registered by "
                                    f"{type(existing).__module__}.{type(existing).__qualname__}; "
                                    "pass replace=True to override it")
            if existing is None or type(existing) is not klass:
                _engines[key] = klass()
        return klass

    return add(cls) if cls is not None else add


def unregister_engine(name: str) -> None:
    with _lock:
        _engines.pop(name, None)


def known_engines() -> list[str]:
    """Every engine name a graph may use, without importing any engine module."""
    with _lock:
        return sorted(set(_engines) | set(_BUILTINS) | set(_plugin_entry_points()))


def get_engine(name: str) -> Engine:
    with _lock:
        if name in _engines:
            return _engines[name]
        if name in _BUILTINS:
            module, _, attr = _BUILTINS[name].partition(":")
            register_engine(getattr(importlib.import_module(module), attr), name=name)
        elif name in _plugin_entry_points():
            ep = _plugin_entry_points()[name]
            try:
                obj = ep.load()
            except Exception as exc:
                raise RegistryError(f"engine plugin '{name}' ({ep.value}) failed to import: {exc}") from exc
            if name not in _engines:
                register_engine(obj, name=name)
        else:
            raise RegistryError(unknown_engine_message(name))
        return _engines[name]


def unknown_engine_message(name: str) -> str:
    names = known_engines()
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"unknown engine '{name}'.{hint} Known engines: {', '.join(names)}"


def engines() -> Mapping[str, Engine]:
    """A read-only view of every engine, built-ins and installed plugins loaded (their runtimes are not)."""
    for name in known_engines():
        get_engine(name)
    return MappingProxyType(_engines)


def list_engines() -> list[dict[str, Any]]:
    """One dict per known engine, for `run-graph --list-engines`: name, installed, version, devices, formats,
    hint (how to install it), error (why devices could not be listed, else ""). Imports installed runtimes."""
    rows = []
    for name in known_engines():
        row: dict[str, Any] = {"name": name, "installed": False, "version": None, "devices": [],
                               "formats": [], "hint": "", "error": ""}
        try:
            engine = get_engine(name)
        except RegistryError as exc:
            rows.append({**row, "error": str(exc)})
            continue
        row.update(installed=engine.is_installed(), formats=list(engine.formats), hint=engine.install_hint)
        if row["installed"]:
            row["version"] = engine.version()
            try:
                row["devices"] = list(engine.devices())
            except Exception as exc:  # a broken install should show up in the listing, not abort it
                row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return rows


def installed_engines() -> list[str]:
    """Names of the engines whose runtime is installed (no runtime is imported)."""
    found = []
    for name in known_engines():
        try:
            if get_engine(name).is_installed():
                found.append(name)
        except RegistryError:
            continue
    return found


def _plugin_entry_points() -> dict[str, metadata.EntryPoint]:
    global _entry_points
    if _entry_points is None:
        found: dict[str, metadata.EntryPoint] = {}
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            found.setdefault(ep.name, ep)
        _entry_points = found
    return _entry_points
