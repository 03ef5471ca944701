"""Checking YAML option values against a calculator's frozen Options dataclass, before anything runs."""
from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

from . import paths
from .ports import type_name

_MISSING = dataclasses.MISSING


class OptionError(ValueError):
    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def build_options(options_cls: type, values: dict[str, Any],
                  base_dir: typing.Callable[[str], Path | None] | None = None) -> tuple[Any, list[OptionError]]:
    """Return (Options instance or None, errors). Every bad key is reported, not just the first.

    Options typed with a path type (`pipelines.paths.InputFile`, `OutputFile`, `MediaSource`, alone or in a
    tuple) are resolved here; `base_dir(key)` says which folder a relative path in that option is relative to
    (None: the working directory)."""
    fields = {f.name: f for f in dataclasses.fields(options_cls)} if dataclasses.is_dataclass(options_cls) else {}
    try:
        hints = typing.get_type_hints(options_cls)
    except Exception:
        hints = {}
    errors: list[OptionError] = []
    kwargs: dict[str, Any] = {}
    valid = ", ".join(fields) or "(none)"
    for key, value in values.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            errors.append(OptionError(f"unknown option '{key}'.{hint} Valid: {valid}", key))
            continue
        try:
            kwargs[key] = coerce(value, hints.get(key, Any), base_dir(key) if base_dir else None)
        except TypeError as exc:
            errors.append(OptionError(f"option '{key}': expected {exc}, got {value!r}", key))
        except PathOptionError as exc:
            errors.append(OptionError(f"option '{key}': {exc}", key))
    for name, f in fields.items():
        if name not in values and f.default is _MISSING and f.default_factory is _MISSING:
            errors.append(OptionError(f"missing required option '{name}' ({type_name(hints.get(name, Any))})", name))
    if errors:
        return None, errors
    try:
        return options_cls(**kwargs), []
    except (TypeError, ValueError) as exc:
        return None, [OptionError(f"invalid options: {exc}")]


class PathOptionError(ValueError):
    """A path option names a file that is not there, or an output that cannot be written."""


def coerce(value: Any, hint: Any, base: Path | None = None) -> Any:
    """Return `value` converted to `hint` where that is lossless (list -> tuple, int -> float), else raise
    TypeError carrying a description of what was expected. Path types resolve against `base`."""
    if hint is Any or hint is object:
        return value
    if hint in paths.PATH_TYPES:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and hint is paths.MediaSource:
            value = str(value)  # a camera index
        if not isinstance(value, (str, os.PathLike)):
            raise TypeError("a path")
        if not os.fspath(value).strip():
            return hint("")  # "not set": the calculator's own checks say whether it may be empty
        try:
            return hint(paths.resolve(hint, value, base))
        except ValueError as exc:
            raise PathOptionError(str(exc)) from None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, base)
            except TypeError:
                pass
        raise TypeError(" or ".join(_describe(a) for a in args))
    if origin is Literal:
        if value in args:
            return value
        raise TypeError("one of " + ", ".join(repr(a) for a in args))
    if origin in (list, tuple, typing.Sequence, set, frozenset) or hint in (list, tuple):
        item = args[0] if args else Any
        if isinstance(value, (str, int, float)) and origin in (tuple, list) and args:
            value = [value]  # a single value where a list is expected: engine: onnxruntime
        if not isinstance(value, (list, tuple)):
            raise TypeError(_describe(hint))
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise TypeError(_describe(hint))
            return tuple(coerce(v, a, base) for v, a in zip(value, args))
        items = [coerce(v, item, base) for v in value]
        if origin is tuple or hint is tuple:
            return tuple(items)
        if origin in (set, frozenset):
            return frozenset(items)
        return items
    if origin in (dict, typing.Mapping) or hint is dict:
        if not isinstance(value, dict):
            raise TypeError(_describe(hint))
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise TypeError("true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError("an integer")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeError("a number")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # camera index 0 for a `source: str` option
        raise TypeError("a string")
    if hint in (Path, os.PathLike):
        if isinstance(value, (str, Path)):
            return Path(value)
        raise TypeError("a path")
    if isinstance(hint, type):
        if isinstance(value, hint):
            return value
        raise TypeError(_describe(hint))
    return value


def _describe(hint: Any) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, type_name(hint))
