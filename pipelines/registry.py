"""Open registries of plugins: calculators, engines, graph libraries. One mechanism for all of them.

A `Registry` holds named objects of one kind. Names come from three places: objects registered at run time
(``@register_calculator``), and entry points of installed distributions (``[project.entry-points."GROUP"]
Name = "module:attr"``), which are imported only when their name is first looked up. framegraph's own
calculators and engines are entry points of the framegraph distribution like any plugin's, so the runtime
never imports or names them.
"""
from __future__ import annotations

import difflib
import threading
from importlib import metadata
from types import MappingProxyType
from typing import Any, Callable, Generic, Iterable, Mapping, TypeVar

from .errors import PluginLoadError, RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named plugins of one kind.

    `accept(obj)` raises TypeError for an object of the wrong kind; `make(obj)` turns what was registered (a
    class) into what `get` returns (the class itself, or an instance for engines).
    """

    def __init__(self, kind: str, group: str, accept: Callable[[Any], None] | None = None,
                 make: Callable[[Any], T] | None = None):
        self.kind = kind
        self.group = group
        self._accept = accept or (lambda obj: None)
        self._make = make or (lambda obj: obj)
        self._lock = threading.RLock()
        self._items: dict[str, T] = {}
        self._sources: dict[str, Any] = {}  # name -> what was registered, to accept the same one twice
        self._entry_points: dict[str, metadata.EntryPoint] | None = None
        #: name -> why its entry point could not be loaded (kept for listings)
        self.failures: dict[str, str] = {}

    # ------------------------------------------------------------ registering

    def register(self, obj: Any = None, *, name: str | None = None, replace: bool = False):
        """Register `obj` under `name` (default: its ``name`` attribute if a non-empty str, else ``__name__``).
        Usable as a decorator. A name taken by another object is refused unless ``replace=True``."""

        def add(target: Any) -> Any:
            self._accept(target)
            key = name or _default_name(target)
            if not key:
                raise ValueError(f"register a {self.kind}: {target!r} has no name; pass name=")
            with self._lock:
                existing = self._sources.get(key)
                if existing is not None and existing is not target and not replace:
                    raise RegistryError(f"{self.kind} name '{key}' is already registered by {_where(existing)}; "
                                        "pass replace=True to override it")
                if existing is not target:
                    self._items[key] = self._make(target)
                    self._sources[key] = target
                self.failures.pop(key, None)
            return target

        return add(obj) if obj is not None else add

    def unregister(self, name: str) -> None:
        with self._lock:
            self._items.pop(name, None)
            self._sources.pop(name, None)

    # ------------------------------------------------------------ looking up

    def get(self, name: str) -> T:
        """The plugin called `name`, importing its entry point on first use.

        Raises RegistryError for an unknown name (with suggestions), PluginLoadError (a RegistryError and an
        ImportError) when the entry point that declares it fails to import, naming the entry point and the error.
        """
        with self._lock:
            item = self._items.get(name)
            if item is not None:
                return item
            ep = self.entry_points().get(name)
            if ep is None:
                raise RegistryError(self.unknown_message(name))
            try:
                obj = ep.load()
            except Exception as exc:
                why = f"{type(exc).__name__}: {exc}"
                self.failures[name] = why
                raise PluginLoadError(
                    f"{self.kind} '{name}' could not be loaded: entry point '{ep.name} = {ep.value}' (group "
                    f"{self.group}, from {_dist_name(ep)}) failed to import: {why}",
                    self.group, f"{ep.name} = {ep.value}") from exc
            if name not in self._items:  # importing the module may have registered it already
                self.register(obj, name=name)
            return self._items[name]

    def __contains__(self, name: str) -> bool:
        return name in self._items or name in self.entry_points()

    def names(self) -> list[str]:
        """Every name a graph may use, without importing any plugin."""
        return sorted(set(self._items) | set(self.entry_points()))

    def view(self) -> Mapping[str, T]:
        """A read-only view of every plugin, each loaded; the ones that fail to load are left out and listed in
        `failures`."""
        for name in self.names():
            try:
                self.get(name)
            except PluginLoadError:
                pass
        return MappingProxyType(self._items)

    def describe(self, name: str) -> str:
        """Where `name` comes from, for listings: "module:attr (entry point of dist)" or the registering module."""
        if name in self._sources:
            return _where(self._sources[name])
        ep = self.entry_points().get(name)
        return f"{ep.value} (entry point of {_dist_name(ep)})" if ep else "?"

    def unknown_message(self, name: str, extra_names: Iterable[str] = ()) -> str:
        names = self.names() + list(extra_names)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.75)
        msg = f"unknown {self.kind} '{name}'."
        if close:
            msg += " Did you mean " + ", ".join(f"'{c}'" for c in close) + "?"
        return msg

    def entry_points(self) -> dict[str, metadata.EntryPoint]:
        if self._entry_points is None:
            found: dict[str, metadata.EntryPoint] = {}
            for ep in metadata.entry_points(group=self.group):
                found.setdefault(ep.name, ep)
            self._entry_points = found
        return self._entry_points

    def refresh(self) -> None:
        """Forget the entry points read so far (after installing a plugin in this process)."""
        with self._lock:
            self._entry_points = None


def _default_name(obj: Any) -> str:
    name = getattr(obj, "name", None)
    if isinstance(name, str) and name:
        return name
    return getattr(obj, "__name__", "")


def _where(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _dist_name(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "an installed distribution"


# ---------------------------------------------------------------- calculators

def _accept_calculator(obj: Any) -> None:
    from .calculator import Calculator

    if not (isinstance(obj, type) and issubclass(obj, Calculator)):
        raise TypeError(f"register_calculator expects a Calculator subclass, got {obj!r}")


CALCULATORS: Registry[type] = Registry("calculator", "framegraph.calculators", accept=_accept_calculator)
ENTRY_POINT_GROUP = CALCULATORS.group


def register_calculator(cls: type | None = None, *, name: str | None = None, replace: bool = False):
    """Register a Calculator subclass under `name` (default: the class name). Usable as a decorator."""
    if cls is not None and name is None:
        name = cls.__name__
    if cls is None:
        return lambda klass: CALCULATORS.register(klass, name=name or klass.__name__, replace=replace)
    return CALCULATORS.register(cls, name=name, replace=replace)


def unregister_calculator(name: str) -> None:
    CALCULATORS.unregister(name)


def calculators() -> Mapping[str, type]:
    """A read-only view of every registered calculator (built-ins and installed plugins loaded)."""
    return CALCULATORS.view()


def known_names() -> list[str]:
    """Every calculator name a graph may use, without importing plugins."""
    return CALCULATORS.names()


def get_calculator(name: str) -> type:
    return CALCULATORS.get(name)


def unknown_calculator_message(name: str, extra_names: list[str] | None = None) -> str:
    return (CALCULATORS.unknown_message(name, extra_names or ())
            + " Run 'run-graph --list-calculators' to see them all.")
