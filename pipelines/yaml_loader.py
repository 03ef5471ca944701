"""Safe YAML loading that remembers line numbers, so every error can point at file:line."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from .errors import GraphConfigError


class LineDict(dict):
    """A dict from YAML that knows its own line and the line of each key (1-based)."""

    line: int = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        return self.lines.get(key, self.line)


class LineList(list):
    line: int = 0


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser where PyYAML has it: 10x faster
    """SafeLoader: only plain data types; any tag that would construct Python objects is refused."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}' (first at line {result.lines[key]})", key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml_text(text: str, filename: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader subclass
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else "?"
        problem = str(exc.problem or exc)
        tag = re.search(r"tag '([^']+)'", problem)
        if tag:
            short = tag.group(1).replace("tag:yaml.org,2002:", "!!")
            raise GraphConfigError(
                f"{filename}:{line}: YAML tag '{short}' is not allowed: graph files are data only and never "
                "construct Python objects (name calculators by their registered name instead)") from None
        raise GraphConfigError(f"{filename}:{line}: {problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark else filename
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        detail = f"{problem} ({context})" if context else problem
        raise GraphConfigError(f"{where}: invalid YAML: {detail}") from None


def load_yaml_file(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GraphConfigError(f"{path}: graph file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GraphConfigError(f"{path}: cannot read graph file: {exc}") from None
    return load_yaml_text(text, str(path))


_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?:,([^}]*))?\}")


def interpolate_env(value: Any, filename: str, line: int = 0) -> Any:
    """Replace ``${env:VAR,default}`` in strings, recursively. A whole-string reference keeps its YAML type."""
    if isinstance(value, LineDict):
        out = LineDict({k: interpolate_env(v, filename, value.line_of(k)) for k, v in value.items()})
        out.line, out.lines = value.line, value.lines
        return out
    if isinstance(value, LineList):
        out = LineList(interpolate_env(v, filename, value.line) for v in value)
        out.line = value.line
        return out
    if not isinstance(value, str) or "${env:" not in value:
        return value

    def lookup(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise GraphConfigError(
            f"{filename}:{line}: environment variable '{name}' is not set and '${{env:{name}}}' has no default "
            f"(write '${{env:{name},DEFAULT}}' to give one)")

    whole = _ENV.fullmatch(value)
    if whole:
        return yaml.safe_load(lookup(whole)) if lookup(whole) != "" else ""
    return _ENV.sub(lookup, value)
