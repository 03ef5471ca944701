"""Graph libraries: folders of built-in graphs (``graphs/``, ``graphs/modules/``) and their assets (``assets/``).

Installed distributions declare them as entry points of the group ``framegraph.resources``, each naming an
object that is a folder path (or a callable returning one) holding ``graphs/`` and/or ``assets/``; framegraph's
own is one of them, so the runtime finds built-in graphs the same way installed or in a checkout.

A graph is found by name (``run-graph face_detect``) in the libraries' ``graphs/``; a subgraph (a node's
``calculator: face_detection_short_range``) beside the graph using it, then in the libraries' ``graphs/modules/``;
a relative path inside a graph (``assets/models/x.onnx``) against the graph file's folder, then the libraries.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .registry import Registry

RESOURCES: Registry[object] = Registry("graph library", "framegraph.resources")
GRAPH_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class GraphInfo:
    name: str
    path: Path
    description: str


def data_roots() -> list[Path]:
    """The folders of every installed graph library, in name order (framegraph's own included)."""
    roots = []
    for name in RESOURCES.names():
        try:
            obj = RESOURCES.get(name)
        except Exception:  # a broken library must not hide the others; `RESOURCES.failures` says why
            continue
        path = Path(obj() if callable(obj) else obj)  # type: ignore[arg-type]
        if path.is_dir() and path not in roots:
            roots.append(path)
    return roots


def builtin_graphs() -> list[GraphInfo]:
    """Every graph of every library (not the subgraph modules), with its one-line description."""
    found: dict[str, GraphInfo] = {}
    for root in data_roots():
        for path in sorted((root / "graphs").glob("*.yaml")):
            found.setdefault(path.stem, GraphInfo(path.stem, path, graph_description(path)))
    return sorted(found.values(), key=lambda g: g.name)


def find_graph(name: str) -> Path | None:
    """A built-in graph by name (``face_detect`` or ``face_detect.yaml``)."""
    stem = name[: -len(Path(name).suffix)] if name.endswith(GRAPH_SUFFIXES) else name
    if not stem or "/" in stem or "\\" in stem:
        return None
    for root in data_roots():
        path = root / "graphs" / f"{stem}.yaml"
        if path.is_file():
            return path
    return None


def find_module(name: str) -> Path | None:
    """A subgraph module of the libraries by name (``face_detection_short_range``)."""
    for root in data_roots():
        path = root / "graphs" / "modules" / f"{name}.yaml"
        if path.is_file():
            return path
    return None


def module_names() -> list[str]:
    return sorted({p.stem for root in data_roots() for p in (root / "graphs" / "modules").glob("*.yaml")})


def search_dirs(base_dir: Path | None) -> list[Path]:
    """Where a relative input path written in a graph is looked for: the graph's folder, then the libraries."""
    dirs = [base_dir] if base_dir is not None else [Path.cwd()]
    return dirs + [r for r in data_roots() if r not in dirs]


_DESCRIPTION = re.compile(r"^description:\s*(.+?)\s*$", re.MULTILINE)


def graph_description(path: Path) -> str:
    """The graph's top-level ``description:`` line, read without parsing the whole file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    match = _DESCRIPTION.search(text)
    return match.group(1).strip("'\"") if match else ""
