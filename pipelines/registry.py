"""The open calculator registry: built-ins, plugins found through entry points, and user decorators.

Built-in calculators live in the ``calculators`` package and register themselves when imported; the
package is walked lazily, on the first look-up, so importing ``pipelines`` stays cheap. Third-party
packages declare ``[project.entry-points."framegraph.calculators"] Name = "module:Class"``; an entry
point is imported only when a graph names it.
"""
from __future__ import annotations

import difflib
import importlib
import logging
import pkgutil
import threading
from importlib import metadata
from types import MappingProxyType
from typing import Mapping

from .errors import RegistryError

log = logging.getLogger("framegraph.registry")

ENTRY_POINT_GROUP = "framegraph.calculators"

_lock = threading.RLock()
_calculators: dict[str, type] = {}
_entry_points: dict[str, metadata.EntryPoint] | None = None
_builtins_loaded = False
#: Built-in modules that could not be imported, with the reason (usually a missing optional extra).
import_failures: dict[str, str] = {}


def register_calculator(cls: type | None = None, *, name: str | None = None, replace: bool = False):
    """Register a Calculator subclass under `name` (default: the class name). Usable as a decorator."""

    def add(klass: type) -> type:
        from .calculator import Calculator

        if not (isinstance(klass, type) and issubclass(klass, Calculator)):
            raise TypeError(f"register_calculator expects a Calculator subclass, got {klass!r}")
        key = name or klass.__name__
        with _lock:
            existing = _calculators.get(key)
            if existing is not None and existing is not klass and not replace:
                raise RegistryError(
                    f"calculator name '{key}' is already registered by {existing.__module__}.{existing.__qualname__}; "
                    "pass replace=True to override it"
                )
            _calculators[key] = klass
        return klass

    return add(cls) if cls is not None else add


def unregister_calculator(name: str) -> None:
    with _lock:
        _calculators.pop(name, None)


def calculators() -> Mapping[str, type]:
    """A read-only view of every registered calculator (built-ins and installed plugins loaded)."""
    _load_builtins()
    for ep_name in list(_plugin_entry_points()):
        _load_entry_point(ep_name)
    return MappingProxyType(_calculators)


def known_names() -> list[str]:
    """Every name a graph may use, without importing plugins."""
    _load_builtins()
    return sorted(set(_calculators) | set(_plugin_entry_points()))


def get_calculator(name: str) -> type:
    with _lock:
        if name in _calculators:
            return _calculators[name]
    _load_builtins()
    if name not in _calculators and name in _plugin_entry_points():
        _load_entry_point(name)
    try:
        return _calculators[name]
    except KeyError:
        raise RegistryError(unknown_calculator_message(name)) from None


def unknown_calculator_message(name: str, extra_names: list[str] | None = None) -> str:
    names = known_names() + list(extra_names or [])
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.75)
    msg = f"unknown calculator '{name}'."
    if close:
        msg += " Did you mean " + ", ".join(f"'{c}'" for c in close) + "?"
    if import_failures:
        missing = "; ".join(f"{m}: {why}" for m, why in sorted(import_failures.items()))
        msg += f" (some built-in calculators could not be loaded: {missing})"
    else:
        msg += " Run 'run-graph --list-calculators' to see them all."
    return msg


def _load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    with _lock:
        if _builtins_loaded:
            return
        _builtins_loaded = True
        try:
            package = importlib.import_module("calculators")
        except ImportError as exc:  # running without the calculators package is allowed
            import_failures["calculators"] = str(exc)
            return
        for info in pkgutil.walk_packages(package.__path__, prefix="calculators."):
            try:
                importlib.import_module(info.name)
            except ImportError as exc:
                import_failures[info.name] = str(exc)
                log.debug("could not import %s: %s", info.name, exc)


def _plugin_entry_points() -> dict[str, metadata.EntryPoint]:
    global _entry_points
    if _entry_points is None:
        found = {}
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            found.setdefault(ep.name, ep)
        _entry_points = found
    return _entry_points


def _load_entry_point(name: str) -> None:
    ep = _plugin_entry_points()[name]
    with _lock:
        if name in _calculators:
            return
    try:
        obj = ep.load()
    except Exception as exc:
        raise RegistryError(f"calculator plugin '{name}' ({ep.value}) failed to import: {exc}") from exc
    if name not in _calculators:
        register_calculator(obj, name=name)
