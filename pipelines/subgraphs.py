"""Step 2 of the front end: subgraphs, YAML files with their own ports and options, used like calculators.

A node whose calculator is not a registered calculator name is looked up as a subgraph: a ``.yaml`` path
relative to the graph, ``NAME.yaml`` in ``modules/`` beside the graph or beside it, then in the installed graph
libraries' ``graphs/modules/`` (`pipelines.resources`). Its nodes are inlined under the using node's name
("face_detection/inference"), its inner streams renamed the same way, its ports bound to the using node's
streams. Inner option values may read the subgraph's options as ``${options.NAME}``; the graph keeps a
`SubgraphInstance` per use, so an override of a subgraph option (``face_detection.min_score_thresh=0.7``) is
applied after expansion by rendering the values again (`render_options`).
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from . import resources
from .config import GraphConfig, NodeConfig, SubgraphInstance, unknown_key_message
from .errors import Issue
from .parse import parse_file
from .registry import CALCULATORS

_OPTION_REF = re.compile(r"\$\{options\.([A-Za-z_][A-Za-z0-9_]*)\}")


def find_subgraph(calculator: str, home: Path | None) -> Path | None:
    """The subgraph file a node's `calculator` names, or None."""
    base = home or Path.cwd()
    if calculator.endswith((".yaml", ".yml")):
        candidates = [base / calculator]
    else:
        candidates = [base / "modules" / f"{calculator}.yaml", base / f"{calculator}.yaml"]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None and not calculator.endswith((".yaml", ".yml")):
        found = resources.find_module(calculator)
    return found


def subgraph_names(home: Path | None) -> list[str]:
    """Subgraph names a node beside `home` may use (for "did you mean" hints)."""
    local = {p.stem for f in ((home or Path.cwd()) / "modules",) if f.is_dir() for p in f.glob("*.yaml")}
    return sorted(local | set(resources.module_names()))


def expand_subgraphs(graph: GraphConfig) -> None:
    """Inline every subgraph node of `graph` (recursively), record its instances, and render option values."""
    top_file = str(Path(graph.file).resolve()) if graph.file and not graph.file.startswith("<") else graph.file
    graph.nodes = _expand(graph.nodes, graph, None, (top_file or "<graph>",))
    graph.issues.extend(render_options(graph))


def _expand(nodes: list[NodeConfig], graph: GraphConfig, parent: str | None,
            stack: tuple[str, ...]) -> list[NodeConfig]:
    out: list[NodeConfig] = []
    for node in nodes:
        if not node.calculator.endswith((".yaml", ".yml")) and node.calculator in CALCULATORS:
            out.append(node)
            continue
        path = find_subgraph(node.calculator, node.home)
        if path is None:
            out.append(node)  # validation reports the unknown calculator with suggestions
            continue
        key = str(path.resolve())
        if key in stack:
            graph.issues.append(node.issue(f"subgraph '{node.calculator}' includes itself ({' -> '.join(stack)})"))
            continue
        out.extend(_inline(node, path, graph, parent, stack + (key,)))
    return out


def _inline(outer: NodeConfig, path: Path, graph: GraphConfig, parent: str | None,
            stack: tuple[str, ...]) -> list[NodeConfig]:
    sub = parse_file(path)
    graph.issues.extend(i for i in sub.issues if i not in graph.issues)
    prefix = outer.name
    declared = sub.declared_options
    for key in outer.raw_options:
        if key not in declared:
            graph.issues.append(outer.issue(unknown_key_message("option", key, sorted(declared), f"subgraph '{path.stem}'"),
                                            outer.option_lines.get(key, outer.line)))
    graph.subgraphs[prefix] = SubgraphInstance(
        name=prefix, file=str(path), declared=dict(declared),
        raw_options={k: v for k, v in outer.raw_options.items() if k in declared},
        raw_bases={k: outer.base_dir(k) for k in outer.raw_options}, parent=parent)
    rename: dict[str, str] = {}
    for tag, inner in sub.input_ports.items():
        if tag in outer.inputs:
            rename[inner] = outer.inputs[tag][0].stream
        else:
            graph.issues.append(outer.issue(f"subgraph input {tag} is not connected. Valid inputs: "
                                            f"{', '.join(sub.input_ports)}"))
    for tag, inner in sub.output_ports.items():
        if tag in outer.outputs:
            rename[inner] = outer.outputs[tag][0]
    for tag in outer.inputs:
        if tag not in sub.input_ports:
            graph.issues.append(outer.issue(unknown_key_message("input", tag, list(sub.input_ports), "subgraph")))
    for tag in outer.outputs:
        if tag not in sub.output_ports:
            graph.issues.append(outer.issue(unknown_key_message("output", tag, list(sub.output_ports), "subgraph")))
    for name, value in sub.side_inputs.items():
        graph.side_inputs.setdefault(name, value)
    for name, ex in sub.executors.items():
        graph.executors.setdefault(name, ex)

    def stream(name: str) -> str:
        return rename.get(name, f"{prefix}/{name}")

    for node in sub.nodes:  # names first, so nested instances are named after their place in the graph
        node.name = f"{prefix}/{node.name}"
        node.parent = prefix
        node.inputs = {t: [dataclasses.replace(r, stream=stream(r.stream)) for r in refs] for t, refs in node.inputs.items()}
        node.outputs = {t: [stream(s) for s in ss] for t, ss in node.outputs.items()}
        if outer.executor and not node.executor:
            node.executor = outer.executor
        if not outer.enabled:
            node.enabled = False
    return _expand(sub.nodes, graph, prefix, stack)


def render_options(graph: GraphConfig) -> list[Issue]:
    """Compute every subgraph instance's values and every inlined node's options from what was written (and
    overridden); returns the faults found (a ``${options.NAME}`` the subgraph does not declare)."""
    issues: list[Issue] = []
    instances = graph.subgraphs
    for inst in sorted(instances.values(), key=lambda i: i.name.count("/")):  # outer instances first
        up = instances.get(inst.parent) if inst.parent else None
        values = dict(inst.declared)
        bases = {k: Path(inst.file).resolve().parent for k in inst.declared}
        for key, raw in inst.raw_options.items():
            values[key], bases[key] = _render(raw, up, inst.raw_bases.get(key), None, issues)
        inst.values, inst.value_bases = values, bases
    for node in graph.nodes:
        inst = instances.get(node.parent) if node.parent else None
        if inst is None:
            continue
        for key, raw in node.raw_options.items():
            value, base = _render(raw, inst, node.option_bases.get(key, node.home), node, issues)
            node.options[key] = value
            if base is not None:
                node.option_bases[key] = base
    return issues


def _render(raw: Any, inst: SubgraphInstance | None, base: Path | None, node: NodeConfig | None,
            issues: list[Issue]) -> tuple[Any, Path | None]:
    """A written value with ``${options.NAME}`` of `inst` substituted, and the folder its paths are relative to:
    a whole-value reference takes the referenced value's folder."""
    if inst is None:
        return raw, base
    if isinstance(raw, str):
        whole = _OPTION_REF.fullmatch(raw)
        if whole and whole.group(1) in inst.values:
            return inst.values[whole.group(1)], inst.value_bases.get(whole.group(1), base)
    return _substitute(raw, inst, node, issues), base


def _substitute(value: Any, inst: SubgraphInstance, node: NodeConfig | None, issues: list[Issue]) -> Any:
    if isinstance(value, list):
        return [_substitute(v, inst, node, issues) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, inst, node, issues) for k, v in value.items()}
    if not isinstance(value, str) or "${options." not in value:
        return value
    missing = [m for m in _OPTION_REF.findall(value) if m not in inst.values]
    if missing:
        message = (f"'${{options.{missing[0]}}}' names no option of subgraph '{Path(inst.file).stem}'. "
                   f"Valid: {', '.join(inst.values) or '(none)'}")
        if node is not None:
            issues.append(node.issue(message))
        else:
            issues.append(Issue(message, inst.file))
        return value
    whole = _OPTION_REF.fullmatch(value)
    if whole:
        return inst.values[whole.group(1)]
    return _OPTION_REF.sub(lambda m: str(inst.values[m.group(1)]), value)


def instance_nodes(graph: GraphConfig, instance: str) -> list[NodeConfig]:
    """Every node inlined from subgraph `instance`, nested ones included."""
    prefix = instance + "/"
    return [n for n in graph.nodes if n.name.startswith(prefix)]


__all__ = ["expand_subgraphs", "find_subgraph", "instance_nodes", "render_options", "subgraph_names"]
