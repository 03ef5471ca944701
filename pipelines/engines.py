"""The inference-engine API: what turns a model file into a runnable `Session`, and how a graph configures one.

Engines are plugins: installed distributions declare them as entry points of the group ``framegraph.engines``
(``myengine = "my_pkg.engine:MyEngine"``), or code registers them with ``@register_engine``; the runtime names
none of them. An engine module imports its runtime package only inside `Engine.devices()` and `Engine.load()`,
so naming, listing and checking engines imports nothing heavy.

An engine declares what it takes, so a graph is checked before anything loads:

- `Engine.Options`: a frozen dataclass of its own options (empty for an engine that takes none), checked like a
  calculator's (unknown key, wrong type) and handed to `load()` typed, in `EngineOptions.own`;
- `Engine.device_forms`: the devices it takes, in the one device grammar (`parse_device`); `default_device`;
- `Engine.precisions`: the precisions it can run at.

A graph names engines in order of preference (`parse_engine_choices`): ``myengine``, ``"myengine:cuda"``
(name:device), or ``{myengine: {some_option: 3, device: cuda:1, threads: 0}}``: the engine's own options, plus
``device``, ``threads`` and ``precision`` for that entry. `configure_engine` turns one entry
into the engine and the `EngineOptions` it will load with, or the messages saying what is wrong.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import EngineUnavailableError, PipelineError, PluginLoadError, RegistryError
from .options import build_options, coerce
from .registry import Registry

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "ENGINES", "ENTRY_POINT_GROUP", "PRECISIONS", "STANDARD_DEVICE_FORMS", "ConfiguredEngine", "Device", "Engine",
    "EngineChoice", "EngineOptionError", "EngineOptions", "EngineRunError", "NoEngineOptions", "Session",
    "TensorSpec", "configure_engine", "device_forms", "engines", "get_engine", "installed_engines",
    "known_engines", "list_engines", "parse_device", "parse_engine_choices", "register_engine",
    "unknown_engine_message", "unregister_engine",
]

ENTRY_POINT_GROUP = "framegraph.engines"
#: Every precision a graph may ask for; each engine takes some of them (`Engine.precisions`).
PRECISIONS = ("f32", "f16", "bf16")
#: The devices every graph may name; engines add their own (`Engine.device_forms`).
STANDARD_DEVICE_FORMS = ("cpu", "cuda[:N]", "gpu[:N]", "tensorrt[:N]")
#: Keys of an engine entry that are not the engine's own options.
ENTRY_KEYS = ("device", "threads", "precision")


class EngineOptionError(PipelineError, ValueError):
    """An engine was asked for something it never does (an option value, a device, a precision). An error of the
    graph, never a reason to fall back to the next engine."""


class EngineRunError(PipelineError, RuntimeError):
    """A loaded engine failed while running a model; the message names the node, the engine and the model."""


# ---------------------------------------------------------------- devices

@dataclass(frozen=True)
class Device:
    """A device as a graph names it: ``cuda:1`` is Device("cuda", 1); ``cpu`` is Device("cpu")."""

    kind: str
    index: int | None = None

    def __str__(self) -> str:
        return self.kind if self.index is None else f"{self.kind}:{self.index}"


_DEVICE = re.compile(r"([a-z][a-z0-9_]*)(?:[:.](\d+))?")
_FORM = re.compile(r"([a-z][a-z0-9_]*)(\[:N\])?")


def parse_device(text: str | Device, forms: Iterable[str] | None = None) -> Device:
    """`text` as a Device: ``NAME`` or ``NAME:N`` (``NAME.N``, OpenVINO's spelling, reads the same), case
    ignored, checked against `forms` ("cuda[:N]": cuda with or without an index; "cpu": no index). `forms`
    defaults to `device_forms()`. ValueError, listing the valid forms, for anything else."""
    if isinstance(text, Device):
        text = str(text)
    valid = list(device_forms() if forms is None else forms)
    kinds = _form_kinds(valid)
    listed = f"Valid: {', '.join(valid)}"
    match = _DEVICE.fullmatch(str(text).strip().lower())
    if match is None:
        raise ValueError(f"device {text!r} is not NAME or NAME:N. {listed}")
    kind, index = match.group(1), match.group(2)
    if kind not in kinds:
        raise ValueError(f"unknown device {text!r}. {listed}")
    if index is not None and not kinds[kind]:
        raise ValueError(f"device {text!r}: {kind} takes no index. {listed}")
    return Device(kind, int(index) if index is not None else None)


def device_forms() -> list[str]:
    """The standard device forms, then those the registered engines add (loading their modules, not runtimes)."""
    kinds = _form_kinds(STANDARD_DEVICE_FORMS)
    for engine in ENGINES.view().values():
        for kind, index in map(_split_form, engine.device_forms):
            kinds[kind] = kinds.get(kind, False) or index
    return [f"{kind}[:N]" if index else kind for kind, index in kinds.items()]


def _split_form(form: str) -> tuple[str, bool]:
    match = _FORM.fullmatch(form)
    if match is None:
        raise ValueError(f"device form {form!r} is not NAME or NAME[:N]")
    return match.group(1), bool(match.group(2))


def _form_kinds(forms: Iterable[str]) -> dict[str, bool]:
    """kind -> whether it takes an index, from forms like "cuda[:N]"."""
    kinds: dict[str, bool] = {}
    for form in forms:
        kind, index = _split_form(form)
        kinds[kind] = kinds.get(kind, False) or index
    return kinds


# ---------------------------------------------------------------- what an engine loads and runs

@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as the model declares it. `None` in `shape` is a dynamic dimension."""

    name: str
    shape: tuple[int | None, ...]
    dtype: "np.dtype"

    def accepts(self, shape: Sequence[int]) -> bool:
        return len(shape) == len(self.shape) and all(w is None or w == g for w, g in zip(self.shape, shape))

    def __str__(self) -> str:
        import numpy as np

        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} [{dims}] {np.dtype(self.dtype).name}"


@dataclass(frozen=True)
class NoEngineOptions:
    """The options of an engine that takes none of its own."""


@dataclass(frozen=True)
class EngineOptions:
    """What `Engine.load` is asked for. `device` may be given as text (``"cuda:1"``); `threads` 0 is the engine's
    own default; `own` is an instance of the engine's `Options` (None: its defaults)."""

    device: Device | str = Device("cpu")
    threads: int = 0
    precision: str = "f32"
    own: Any = None

    def __post_init__(self):
        if not isinstance(self.device, Device):
            object.__setattr__(self, "device", parse_device(self.device))
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0:
            raise ValueError(f"threads must be an integer >= 0 (0: the engine's default), got {self.threads!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


class Session:
    """A model loaded by an engine. One caller at a time (a calculator instance is never called concurrently),
    unless `concurrent` says the engine's runtime takes calls from several threads at once."""

    #: run() may be called from several threads at once (ONNX Runtime's sessions are thread-safe): streams
    #: sharing the session then run side by side, as separate processes would, instead of taking turns.
    concurrent: bool = False

    def __init__(self, engine: str, model_path: Path, device: str, inputs: Sequence[TensorSpec],
                 outputs: Sequence[TensorSpec], details: str = ""):
        self.engine = engine
        self.model_path = Path(model_path)
        self.device = device
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.details = details  # for the log: provider, precision, threads

    def run(self, arrays: Sequence["np.ndarray"]) -> list["np.ndarray"]:
        """Run on one array per input, in model order; return one new array per output, in model order."""
        raise NotImplementedError(f"{type(self).__name__} must implement run()")

    def close(self) -> None:
        pass


class Engine:
    """Base class of an engine. Subclasses set the class attributes and implement `load` (and `devices`).

    `load` raises EngineUnavailableError when the engine cannot run here (runtime missing, device absent, server
    unreachable), ModelError when it cannot load this model (format, conversion), EngineOptionError for a value
    it never takes: the first two let a graph fall back to its next engine, the last does not.
    """

    name: ClassVar[str] = ""
    formats: ClassVar[tuple[str, ...]] = ()  # file suffixes it loads, lower case with the dot
    module: ClassVar[str] = ""  # top-level import name, found without importing it
    distributions: ClassVar[tuple[str, ...]] = ()  # pip distributions that provide `module`, for version()
    install_hint: ClassVar[str] = ""
    #: Its own options: a frozen dataclass, importable without the runtime.
    Options: ClassVar[type] = NoEngineOptions
    #: The devices it takes ("cuda[:N]": with or without an index), and the one used when a graph names none.
    device_forms: ClassVar[tuple[str, ...]] = ("cpu",)
    default_device: ClassVar[str] = "cpu"
    precisions: ClassVar[tuple[str, ...]] = ("f32",)
    #: Runs a model whose first dimension is dynamic at any batch size without rebuilding it, so the frames of
    #: several streams can share one call (InferenceCalculator's max_batch and batch_model).
    batches: ClassVar[bool] = False

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
        """Devices this engine can run on here ("cpu", "cuda", "cuda:1"). May import the runtime."""
        return ["cpu"]

    def load(self, model_path: Path, options: EngineOptions) -> Session:
        raise NotImplementedError(f"engine {self.name!r} must implement load()")

    def accepts(self, device: Device) -> bool:
        kinds = _form_kinds(self.device_forms)
        return device.kind in kinds and (device.index is None or kinds[device.kind])

    def problems(self, options: EngineOptions) -> list[str]:
        """What this engine never does among `options`, one message each, without importing the runtime.
        Engines with rules across options (a precision only on some device) extend it."""
        found = []
        if not self.accepts(options.device):
            found.append(f"device '{options.device}' is not one it takes. Valid: {', '.join(self.device_forms)}")
        if options.precision not in self.precisions:
            found.append(f"precision '{options.precision}' is not one it runs at. Valid: "
                         f"{', '.join(self.precisions)}")
        own = options.own
        if own is not None and not isinstance(own, self.Options):
            found.append(f"its options must be a {self.Options.__qualname__}, got {type(own).__qualname__}")
        elif own is not None:  # made in Python, where nothing checked the types against the declaration
            found += _type_problems(own)
        return found

    def checked(self, options: EngineOptions) -> Any:
        """This engine's own options from `options` (its defaults when None), after refusing with
        EngineOptionError what `problems` finds. Engines call it first in `load`."""
        found = self.problems(options)
        if found:
            raise EngineOptionError(f"engine '{self.name}': " + "; ".join(found))
        return options.own if options.own is not None else self.Options()

    def unavailable(self, what: str, hint: str) -> EngineUnavailableError:
        return EngineUnavailableError(f"engine '{self.name}': {what}; hint: {hint}")

    def refuse(self, what: str, hint: str = "") -> EngineOptionError:
        return EngineOptionError(f"engine '{self.name}': {what}" + (f"; hint: {hint}" if hint else ""))


def _type_problems(own: Any) -> list[str]:
    try:
        hints = typing.get_type_hints(type(own))
    except Exception:  # an annotation that does not resolve: nothing to check against
        return []
    found = []
    for f in dataclasses.fields(own):
        value = getattr(own, f.name)
        try:
            coerce(value, hints.get(f.name, Any))
        except (TypeError, ValueError) as exc:
            found.append(f"option '{f.name}': expected {exc}, got {value!r}")
    return found


# ---------------------------------------------------------------- the registry

def _accept_engine(obj: Any) -> None:
    if not (isinstance(obj, type) and issubclass(obj, Engine)):
        raise TypeError(f"register_engine expects an Engine subclass, got {obj!r}")
    if not (dataclasses.is_dataclass(obj.Options) and obj.Options.__dataclass_params__.frozen):
        raise TypeError(f"engine {obj.__qualname__}: Options must be a frozen dataclass, got {obj.Options!r}")
    clash = [f.name for f in dataclasses.fields(obj.Options) if f.name in ENTRY_KEYS]
    if clash:
        raise TypeError(f"engine {obj.__qualname__}: option(s) {', '.join(clash)} clash with the entry keys "
                        f"{', '.join(ENTRY_KEYS)}")
    _form_kinds(obj.device_forms)


ENGINES: Registry[Engine] = Registry("engine", ENTRY_POINT_GROUP, accept=_accept_engine, make=lambda cls: cls())


def register_engine(cls: type | None = None, *, name: str | None = None, replace: bool = False):
    """Register an Engine subclass under `name` (default: its `name`). Usable as a class decorator. A name an
    installed entry point declares is taken too: replacing it needs ``replace=True``."""

    def add(klass: type) -> type:
        _accept_engine(klass)
        key = name or klass.name
        if not key:
            raise ValueError(f"register_engine: {klass.__qualname__} has no name; set name = '...' or pass name=")
        if not replace and key in ENGINES.entry_points():
            try:
                ENGINES.get(key)  # so that the registry compares with what the entry point declares
            except PluginLoadError:
                pass
        return ENGINES.register(klass, name=key, replace=replace)

    return add(cls) if cls is not None else add


def unregister_engine(name: str) -> None:
    ENGINES.unregister(name)


def known_engines() -> list[str]:
    """Every engine name a graph may use, without importing any engine module."""
    return ENGINES.names()


def get_engine(name: str) -> Engine:
    """The engine called `name`. RegistryError for an unknown name (with suggestions and the known names);
    PluginLoadError (a RegistryError) when the module that provides it fails to import."""
    try:
        return ENGINES.get(name)
    except PluginLoadError:
        raise
    except RegistryError:
        raise RegistryError(unknown_engine_message(name)) from None


def unknown_engine_message(name: str) -> str:
    return f"{ENGINES.unknown_message(name)} Known engines: {', '.join(known_engines()) or '(none)'}"


def engines() -> Mapping[str, Engine]:
    """A read-only view of every engine, each module loaded (not its runtime); those that fail to import are
    left out and listed in `ENGINES.failures`."""
    return ENGINES.view()


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


def list_engines() -> list[dict[str, Any]]:
    """One dict per known engine, for `run-graph --list-engines`: name, installed, version, devices (here),
    device_names (the forms it takes), formats, options (its option keys), hint (how to install it), error (why
    it could not be loaded or its devices listed, else ""). Imports installed runtimes, to list devices."""
    rows = []
    for name in known_engines():
        row: dict[str, Any] = {"name": name, "installed": False, "version": None, "devices": [],
                               "device_names": [], "formats": [], "options": [], "hint": "", "error": ""}
        try:
            engine = get_engine(name)
        except RegistryError as exc:
            rows.append({**row, "error": str(exc)})
            continue
        row.update(installed=engine.is_installed(), formats=list(engine.formats), hint=engine.install_hint,
                   device_names=list(engine.device_forms),
                   options=[f.name for f in dataclasses.fields(engine.Options)])
        if row["installed"]:
            row["version"] = engine.version()
            try:
                row["devices"] = list(engine.devices())
            except Exception as exc:  # a broken install should show up in the listing, not abort it
                row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return rows


# ---------------------------------------------------------------- a graph's engine entries

@dataclass(frozen=True)
class EngineChoice:
    """One entry of a graph's `engine:` list, as written: the engine's name, what the entry sets of device,
    threads and precision (None: the node's), and the values of the engine's own options (not checked yet)."""

    name: str
    device: str | None = None
    threads: int | None = None
    precision: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name if self.device is None else f"{self.name}:{self.device}"


@dataclass(frozen=True)
class ConfiguredEngine:
    """An entry resolved: the engine, and what it will be asked to load with."""

    name: str
    engine: Engine
    options: EngineOptions


def parse_engine_choices(value: Any) -> tuple[EngineChoice, ...]:
    """A graph's `engine:` value as entries, in order: a name (``myengine``), ``name:device``
    (``"myengine:cuda"``), or a one-key mapping ``{name[:device]: {option: value, ...}}`` whose options may
    include ``device``, ``threads`` and ``precision``; a list of those; or entries already parsed. ValueError
    saying what is wrong with the first bad one. Engine names are not looked up here."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise ValueError("expected at least one engine, got none")
    return tuple(_choice(item) for item in items)


def _choice(item: Any) -> EngineChoice:
    if isinstance(item, EngineChoice):
        return item
    if isinstance(item, str):
        name, device = _split_name(item)
        return EngineChoice(name, device)
    if isinstance(item, Mapping):
        if len(item) != 1:
            raise ValueError(f"an engine entry given as a mapping has one key, the engine's name (e.g. {{myengine: "
                             f"{{some_option: 3}}}}), got {dict(item)!r}")
        ((key, values),) = item.items()
        name, device = _split_name(str(key))
        values = {} if values is None else values
        if not isinstance(values, Mapping):
            raise ValueError(f"engine '{name}': its entry's value is a mapping of options, got {values!r}")
        values = dict(values)
        if "device" in values:
            if device is not None:
                raise ValueError(f"engine '{name}': device given twice ('{key}' and device: {values['device']})")
            device = values.pop("device")
            if device is not None and not isinstance(device, str):
                raise ValueError(f"engine '{name}': device: expected a string, got {device!r}")
        threads = values.pop("threads", None)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 0):
            raise ValueError(f"engine '{name}': threads: expected an integer >= 0 (0: the engine's default), "
                             f"got {threads!r}")
        precision = values.pop("precision", None)
        if precision is not None and precision not in PRECISIONS:
            raise ValueError(f"engine '{name}': precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
        return EngineChoice(name, device, threads, precision, MappingProxyType(values))
    raise ValueError(f"an engine entry is a name, 'name:device' or {{name: {{options}}}}, got {item!r}")


def _split_name(text: str) -> tuple[str, str | None]:
    name, sep, device = text.strip().partition(":")
    if not name:
        raise ValueError(f"an engine entry needs the engine's name, got {text!r}")
    if sep and not device:
        raise ValueError(f"engine entry {text!r}: nothing after ':' (expected name:device, e.g. myengine:cuda)")
    return name, (device or None)


def configure_engine(choice: EngineChoice, device: str | None = None, threads: int = 0, precision: str = "f32",
                     own: Mapping[str, Any] | None = None) -> tuple[ConfiguredEngine | None, list[str]]:
    """Resolve one entry against its engine: (the engine and its EngineOptions, []) or (None, messages). The
    entry's device, threads and precision win over the node's (`device` None: the engine's default device);
    `own`, when given, stands for the entry's option values. Imports the engine's module, never its runtime."""
    try:
        engine = get_engine(choice.name)
    except RegistryError as exc:  # PluginLoadError included: its message names the entry point and the error
        return None, [str(exc)]
    prefix = f"engine '{choice.name}': "
    errors: list[str] = []
    values = dict(choice.options if own is None else own)
    own_options, option_errors = build_options(engine.Options, values)
    errors += [prefix + str(e) for e in option_errors]
    text = choice.device or device or engine.default_device
    try:
        parsed = parse_device(text)
    except ValueError as exc:
        return None, errors + [prefix + str(exc)]
    settings = EngineOptions(parsed, choice.threads if choice.threads is not None else threads,
                             choice.precision or precision, own_options)
    errors += [prefix + p for p in engine.problems(settings)]
    if errors:
        return None, errors
    return ConfiguredEngine(choice.name, engine, settings), []
