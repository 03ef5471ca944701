"""Subgraphs: a YAML file with its own inputs, outputs and options, used in a graph like a calculator.

Its nodes are inlined under the outer node's name ("face_detection/inference"), its inner streams renamed
the same way, its ports bound to the outer node's streams, and "${options.NAME}" in inner option values
replaced by the outer node's options (checked against the ones the subgraph declares).
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from .config import (GraphConfig, NodeConfig, _assign_default_names, _parse_graph_fields, _snake,
                     _unknown)
from .errors import GraphConfigError, Issue
from .yaml_loader import interpolate_env, load_yaml_file

_OPTION_REF = re.compile(r"\$\{options\.([A-Za-z_][A-Za-z0-9_]*)\}")

def find_subgraph(calculator: str, base_dir: Path) -> Path | None:
    """A subgraph is a YAML file: the name as a path, or NAME.yaml in modules/ beside the graph or in graphs/modules/."""
    candidates = []
    if calculator.endswith((".yaml", ".yml")):
        candidates += [base_dir / calculator, Path(calculator)]
    else:
        for folder in (base_dir / "modules", base_dir, Path(__file__).resolve().parent.parent / "graphs" / "modules"):
            candidates.append(folder / f"{calculator}.yaml")
    return next((c for c in candidates if c.is_file()), None)


def subgraph_names(base_dir: Path) -> list[str]:
    folders = {base_dir / "modules", Path(__file__).resolve().parent.parent / "graphs" / "modules"}
    return sorted({p.stem for f in folders if f.is_dir() for p in f.glob("*.yaml")})


def expand_subgraphs(graph: GraphConfig, base_dir: Path, stack: tuple[str, ...]) -> list[NodeConfig]:
    from . import registry

    out: list[NodeConfig] = []
    for node in graph.nodes:
        if not node.calculator.endswith((".yaml", ".yml")) and _is_registered(registry, node.calculator):
            out.append(node)
            continue
        path = find_subgraph(node.calculator, base_dir)
        if path is None:
            out.append(node)  # validation reports the unknown calculator with suggestions
            continue
        key = str(path.resolve())
        if key in stack:
            graph.issues.append(node.issue(f"subgraph '{node.calculator}' includes itself ({' -> '.join(stack)})"))
            continue
        out.extend(_inline(node, path, graph, stack + (key,)))
    return out


def _is_registered(registry, name: str) -> bool:
    try:
        registry.get_calculator(name)
        return True
    except Exception:
        return False


def _inline(outer: NodeConfig, path: Path, graph: GraphConfig, stack: tuple[str, ...]) -> list[NodeConfig]:
    raw = load_yaml_file(path)
    filename = str(path)
    if not isinstance(raw, dict):
        raise GraphConfigError(f"{filename}:1: a subgraph file must be a mapping with inputs, outputs and nodes")
    raw = interpolate_env(raw, filename)
    sub = GraphConfig(file=filename)
    _parse_graph_fields(raw, sub, filename)
    prefix = outer.name or _snake(path.stem)
    outer.name = prefix
    in_ports = _port_map(raw.get("inputs"))
    out_ports = _port_map(raw.get("outputs"))
    declared = dict(raw.get("options") or {})
    for key, line in ((k, outer.option_lines.get(k, outer.line)) for k in outer.options):
        if key not in declared:
            graph.issues.append(outer.issue(_unknown("option", key, sorted(declared), f"subgraph '{path.stem}'"), line))
    values = {**declared, **outer.options}
    rename: dict[str, str] = {}
    for tag, inner in in_ports.items():
        if tag in outer.inputs:
            rename[inner] = outer.inputs[tag][0].stream
        else:
            graph.issues.append(outer.issue(f"subgraph input {tag} is not connected. Valid inputs: {', '.join(in_ports)}"))
    for tag, inner in out_ports.items():
        if tag in outer.outputs:
            rename[inner] = outer.outputs[tag][0]
    for tag in outer.inputs:
        if tag not in in_ports:
            graph.issues.append(outer.issue(f"{_unknown('input', tag, list(in_ports), 'subgraph')}"))
    for tag in outer.outputs:
        if tag not in out_ports:
            graph.issues.append(outer.issue(f"{_unknown('output', tag, list(out_ports), 'subgraph')}"))
    for name, value in sub.side_inputs.items():
        graph.side_inputs.setdefault(name, value)
    for name, ex in sub.executors.items():
        graph.executors.setdefault(name, ex)

    def stream(name: str) -> str:
        return rename.get(name, f"{prefix}/{name}")

    sub.nodes = expand_subgraphs(sub, path.parent, stack)
    _assign_default_names(sub)
    graph.issues.extend(i for i in sub.issues if i not in graph.issues)
    inner_nodes = sub.nodes
    for node in inner_nodes:
        node.name = f"{prefix}/{node.name}"
        node.inputs = {t: [dataclasses.replace(r, stream=stream(r.stream)) for r in refs] for t, refs in node.inputs.items()}
        node.outputs = {t: [stream(s) for s in ss] for t, ss in node.outputs.items()}
        node.options = {k: _substitute_options(v, values, node, graph.issues) for k, v in node.options.items()}
        if outer.executor and not node.executor:
            node.executor = outer.executor
        if not outer.enabled:
            node.enabled = False
    return inner_nodes


def _port_map(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, list):
        return {str(v).upper(): str(v) for v in value}
    return {}


def _substitute_options(value: Any, values: dict[str, Any], node: NodeConfig, issues: list[Issue]) -> Any:
    if isinstance(value, list):
        return [_substitute_options(v, values, node, issues) for v in value]
    if isinstance(value, dict):
        return {k: _substitute_options(v, values, node, issues) for k, v in value.items()}
    if not isinstance(value, str) or "${options." not in value:
        return value
    whole = _OPTION_REF.fullmatch(value)
    missing = [m for m in _OPTION_REF.findall(value) if m not in values]
    if missing:
        issues.append(node.issue(f"'${{options.{missing[0]}}}' names no option of this subgraph. Valid: {', '.join(values)}"))
        return value
    if whole:
        return values[whole.group(1)]
    return _OPTION_REF.sub(lambda m: str(values[m.group(1)]), value)
