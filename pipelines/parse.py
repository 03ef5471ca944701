"""Step 1 of the front end: one YAML graph (or subgraph) file -> a `GraphConfig`, subgraphs not yet expanded.

Every node gets its name here, once: the one written, or one made from its calculator (``SsdAnchorsCalculator``
-> ``ssd_anchors``, then ``ssd_anchors_2``, ...).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .config import (GraphConfig, ExecutorConfig, InputRef, NODE_FIELDS, NodeConfig, parse_queue, set_node_field,
                     unknown_key_message)
from .errors import GraphConfigError, Issue
from .yaml_loader import LineDict, interpolate_env, load_yaml_file, load_yaml_text

GRAPH_KEYS = ("inputs", "outputs", "side_inputs", "executors", "nodes", "options", "cli", "description")
NODE_KEYS = ("calculator", "name", "inputs", "outputs", "options") + NODE_FIELDS
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_file(path: Path) -> GraphConfig:
    """Read and parse a graph file. Raises GraphConfigError when it cannot be read or is not YAML; every other
    fault is collected in the result's `issues`."""
    return parse_data(load_yaml_file(path), str(path), path.resolve().parent)


def parse_text(text: str, filename: str = "<graph>", base_dir: Path | None = None) -> GraphConfig:
    return parse_data(load_yaml_text(text, filename), filename, base_dir.resolve() if base_dir else None)


def parse_data(raw: Any, filename: str, home: Path | None) -> GraphConfig:
    if raw is None:
        raw = LineDict()
    if not isinstance(raw, dict):
        raise GraphConfigError(f"{filename}:1: a graph file must be a mapping with 'nodes:', got {type(raw).__name__}")
    raw = interpolate_env(raw, filename)
    graph = GraphConfig(file=filename)
    issues = graph.issues
    for key in raw:
        if key not in GRAPH_KEYS:
            issues.append(Issue(unknown_key_message("key", key, GRAPH_KEYS, "graph"), filename, raw.line_of(key)))
    graph.description = str(raw.get("description", "") or "")
    graph.input_ports = _port_map(raw.get("inputs"))
    graph.output_ports = _port_map(raw.get("outputs"))
    graph.inputs = _stream_list(raw.get("inputs"), "inputs", filename, raw.line_of("inputs"), issues)
    graph.outputs = _stream_list(raw.get("outputs"), "outputs", filename, raw.line_of("outputs"), issues)
    _side_inputs(raw, graph, filename)
    _executors(raw, graph, filename)
    _cli(raw, graph, filename)
    declared = raw.get("options") or {}
    if not isinstance(declared, dict):
        issues.append(Issue("'options' must be a mapping of name: default", filename, raw.line_of("options")))
        declared = {}
    graph.declared_options = dict(declared)
    nodes = raw.get("nodes")
    if nodes is None:
        issues.append(Issue("the graph has no 'nodes:' list", filename, raw.line or 1))
    elif not isinstance(nodes, list):
        issues.append(Issue("'nodes' must be a list of nodes", filename, raw.line_of("nodes")))
    else:
        for item in nodes:
            node = _node(item, filename, home, issues)
            if node is not None:
                graph.nodes.append(node)
    _assign_default_names(graph)
    return graph


def _side_inputs(raw: LineDict, graph: GraphConfig, filename: str) -> None:
    side = raw.get("side_inputs") or {}
    if not isinstance(side, dict):
        graph.issues.append(Issue("'side_inputs' must be a mapping of name: value", filename,
                                  raw.line_of("side_inputs")))
        return
    graph.side_inputs = dict(side)


def _executors(raw: LineDict, graph: GraphConfig, filename: str) -> None:
    spec_map = raw.get("executors") or {}
    if not isinstance(spec_map, dict):
        graph.issues.append(Issue("'executors' must be a mapping of name: {threads: N} or {processes: N}", filename,
                                  raw.line_of("executors")))
        return
    for name, spec in spec_map.items():
        line = spec_map.line_of(name)
        key = "processes" if isinstance(spec, dict) and "processes" in spec else "threads"
        if isinstance(spec, dict):
            for unknown in (k for k in spec if k not in ("threads", "processes")):
                graph.issues.append(Issue(f"executor '{name}': " + unknown_key_message(
                    "key", unknown, ("threads", "processes"), "executor"), filename, line))
            if "threads" in spec and "processes" in spec:
                graph.issues.append(Issue(f"executor '{name}' has both 'threads' and 'processes': give one "
                                          "(a process executor gets a thread per process)", filename, line))
        count = spec.get(key, 1) if isinstance(spec, dict) else spec
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            graph.issues.append(Issue(f"executor '{name}': '{key}' must be a positive integer, got {count!r}",
                                      filename, line))
            count = 1
        graph.executors[str(name)] = ExecutorConfig(threads=count, processes=count if key == "processes" else 0)


def _cli(raw: LineDict, graph: GraphConfig, filename: str) -> None:
    cli = raw.get("cli") or {}
    if not isinstance(cli, dict):
        graph.issues.append(Issue("'cli' must map run-graph flags to NODE.OPTION targets", filename,
                                  raw.line_of("cli")))
        return
    for flag, target in cli.items():
        targets = [target] if isinstance(target, str) else target
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            graph.issues.append(Issue(f"cli: '{flag}' must name a NODE.OPTION target or a list of them, got "
                                      f"{target!r}", filename, cli.line_of(flag)))
            continue
        graph.cli[str(flag)] = list(targets)


def _port_map(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, list):
        return {str(v).upper(): str(v) for v in value}
    return {}


def _stream_list(value: Any, what: str, filename: str, line: int, issues: list[Issue]) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):  # subgraph modules map TAG: stream; the stream names matter here
        return [str(v) for v in value.values()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    issues.append(Issue(f"'{what}' must be a list of stream names, got {value!r}", filename, line))
    return []


def _node(item: Any, filename: str, home: Path | None, issues: list[Issue]) -> NodeConfig | None:
    line = getattr(item, "line", 0)
    if not isinstance(item, dict):
        issues.append(Issue(f"each node must be a mapping with 'calculator:', got {item!r}", filename, line))
        return None
    calc = item.get("calculator")
    if not isinstance(calc, str) or not calc:
        issues.append(Issue("node has no 'calculator:' (the registered calculator name or a subgraph)", filename, line))
        return None
    node = NodeConfig(calculator=calc, name=str(item.get("name") or ""), file=filename, line=line, home=home)

    def bad(key: str, message: str) -> None:
        issues.append(node.issue(message, item.line_of(key)))

    for key in item:
        if key not in NODE_KEYS:
            bad(key, unknown_key_message("key", key, NODE_KEYS, "node"))
    if node.name and not _NAME.match(node.name):
        bad("name", f"node name '{node.name}' must be letters, digits and underscores (it is used in --set NAME.option=value)")
    inputs = item.get("inputs") or {}
    if not isinstance(inputs, dict):
        bad("inputs", f"'inputs' must map port tags to streams, got {inputs!r}")
        inputs = LineDict()
    for tag, spec in inputs.items():
        refs = _input_refs(spec, node, tag, inputs.line_of(tag), issues)
        if refs is not None:
            node.inputs[str(tag)] = refs
            if not isinstance(spec, list):
                node.scalar_ports.add(str(tag))
    outputs = item.get("outputs") or {}
    if not isinstance(outputs, dict):
        bad("outputs", f"'outputs' must map port tags to streams, got {outputs!r}")
        outputs = {}
    for tag, spec in outputs.items():
        if isinstance(spec, str):
            node.outputs[str(tag)] = [spec]
            node.scalar_ports.add(str(tag))
        elif isinstance(spec, list) and all(isinstance(s, str) for s in spec):
            node.outputs[str(tag)] = list(spec)
        else:
            bad("outputs", f"output {tag}: expected a stream name or a list of them, got {spec!r}")
    options = item.get("options") or {}
    if not isinstance(options, dict):
        bad("options", f"'options' must be a mapping, got {options!r}")
        options = {}
    node.options = dict(options)
    node.raw_options = dict(options)
    node.option_lines = {k: options.line_of(k) for k in options} if isinstance(options, LineDict) else {}
    for key in NODE_FIELDS:
        if key in item:
            error = set_node_field(node, key, item[key])
            if error:
                bad(key, error)
    return node


def _input_refs(spec: Any, node: NodeConfig, tag: str, line: int, issues: list[Issue]) -> list[InputRef] | None:
    specs = spec if isinstance(spec, list) else [spec]
    refs = []
    for s in specs:
        if isinstance(s, str):
            refs.append(InputRef(s))
        elif isinstance(s, dict) and isinstance(s.get("stream"), str):
            extra = set(s) - {"stream", "back_edge", "queue"}
            if extra:
                issues.append(node.issue(f"input {tag}: "
                                         + unknown_key_message("key", sorted(extra)[0], ("stream", "back_edge", "queue"),
                                                               "input"), line))
            back_edge = s.get("back_edge", False)
            if not isinstance(back_edge, bool):
                issues.append(node.issue(f"input {tag}: back_edge must be true or false, got {back_edge!r}", line))
                back_edge = False
            queue = None
            if "queue" in s:
                queue, error = parse_queue(s["queue"])
                if error:
                    issues.append(node.issue(f"input {tag}: {error}", line))
            refs.append(InputRef(s["stream"], back_edge, queue))
        else:
            issues.append(node.issue(f"input {tag}: expected a stream name, {{stream: NAME, back_edge: BOOL, queue: ...}} "
                                     f"or a list of them, got {s!r}", line))
            return None
    return refs


def _assign_default_names(graph: GraphConfig) -> None:
    taken = {n.name for n in graph.nodes if n.name}
    seen: dict[str, int] = {}
    for node in graph.nodes:
        if node.name:
            if node.name in seen:
                graph.issues.append(node.issue(f"node name '{node.name}' is used twice (also at line {seen[node.name]})"))
            seen[node.name] = node.line
            continue
        base = default_name(node.calculator)
        name, i = base, 1
        while name in taken:
            i += 1
            name = f"{base}_{i}"
        taken.add(name)
        node.name = name


def default_name(calculator: str) -> str:
    """``SsdAnchorsCalculator`` -> ``ssd_anchors``; ``modules/face.yaml`` -> ``face``."""
    stem = Path(calculator).stem if calculator.endswith((".yaml", ".yml")) else calculator
    if stem.endswith("Calculator") and stem != "Calculator":
        stem = stem[: -len("Calculator")]
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", stem).lower()
