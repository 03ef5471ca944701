"""Graph files: YAML -> dataclasses, with subgraphs expanded and ``--set`` overrides applied.

Structural faults are collected as `Issue`s (file, line, node) rather than raised one at a time, so a
user sees every fault of a graph at once; `validate.py` adds the checks that need the registry.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import GraphConfigError, GraphValidationError, Issue
from .yaml_loader import LineDict, interpolate_env, load_yaml_file, load_yaml_text

OVERFLOW_POLICIES = ("block", "drop_oldest", "drop_newest")
INPUT_POLICIES = ("sync", "immediate")
ERROR_POLICIES = ("fail", "skip")
DEFAULT_QUEUE_SIZE = 8
GRAPH_KEYS = ("inputs", "outputs", "side_inputs", "executors", "nodes", "options", "cli", "description")
NODE_KEYS = ("calculator", "name", "inputs", "outputs", "options", "input_policy", "queue", "executor",
             "on_error", "enabled")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class QueueConfig:
    size: int = DEFAULT_QUEUE_SIZE
    overflow: str = "block"


@dataclass
class InputRef:
    stream: str
    back_edge: bool = False
    queue: QueueConfig | None = None


@dataclass
class NodeConfig:
    calculator: str
    name: str
    inputs: dict[str, list[InputRef]] = field(default_factory=dict)
    outputs: dict[str, list[str]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    input_policy: str | None = None
    queue: QueueConfig | None = None
    executor: str | None = None
    on_error: str = "fail"
    enabled: bool = True
    file: str | None = None
    line: int = 0
    option_lines: dict[str, int] = field(default_factory=dict)
    #: ports given as a single stream (not a list), to check against `.multiple()`
    scalar_ports: set[str] = field(default_factory=set)

    def issue(self, message: str, line: int | None = None) -> Issue:
        return Issue(message, self.file, line or self.line, self.name, self.calculator)


@dataclass
class ExecutorConfig:
    threads: int = 1


@dataclass
class GraphConfig:
    nodes: list[NodeConfig] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    side_inputs: dict[str, Any] = field(default_factory=dict)
    executors: dict[str, ExecutorConfig] = field(default_factory=dict)
    cli: dict[str, list[str]] = field(default_factory=dict)
    file: str | None = None
    description: str = ""
    #: faults found while reading; validation reports them with its own
    issues: list[Issue] = field(default_factory=list)

    def node(self, name: str) -> NodeConfig:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


# ---------------------------------------------------------------- loading


def load_graph(path: str | Path, overrides: list[str] | None = None) -> GraphConfig:
    """Read a graph file, expand its subgraphs and apply ``--set`` overrides. Does not validate."""
    path = Path(path)
    raw = load_yaml_file(path)
    return _build(raw, str(path), path.parent, overrides)


def parse_graph(text: str, filename: str = "<graph>", base_dir: str | Path = ".",
                overrides: list[str] | None = None) -> GraphConfig:
    return _build(load_yaml_text(text, filename), filename, Path(base_dir), overrides)


def _build(raw: Any, filename: str, base_dir: Path, overrides: list[str] | None) -> GraphConfig:
    if raw is None:
        raw = LineDict()
    if not isinstance(raw, dict):
        raise GraphConfigError(f"{filename}:1: a graph file must be a mapping with 'nodes:', got {type(raw).__name__}")
    raw = interpolate_env(raw, filename)
    graph = GraphConfig(file=filename)
    _parse_graph_fields(raw, graph, filename)
    _assign_default_names(graph)
    # Overrides naming a node of this file go in before subgraphs expand, so `--set face_detection.engine=...`
    # reaches a subgraph's own options; the rest name nodes inside subgraphs ("face_detection/inference").
    top = {n.name for n in graph.nodes}
    overrides = list(overrides or [])
    apply_overrides(graph, [o for o in overrides if _override_node(o) in top])
    from .subgraphs import expand_subgraphs

    graph.nodes = expand_subgraphs(graph, base_dir, stack=(str(Path(filename).resolve()),))
    _assign_default_names(graph)
    apply_overrides(graph, [o for o in overrides if _override_node(o) not in top])
    return graph


def _override_node(text: str) -> str:
    return text.partition("=")[0].rpartition(".")[0]


def _parse_graph_fields(raw: LineDict, graph: GraphConfig, filename: str) -> None:
    issues = graph.issues
    for key in raw:
        if key not in GRAPH_KEYS:
            issues.append(Issue(_unknown("key", key, GRAPH_KEYS, "graph"), filename, raw.line_of(key)))
    graph.description = str(raw.get("description", ""))
    graph.inputs = _stream_list(raw.get("inputs"), "inputs", filename, raw.line_of("inputs"), issues)
    graph.outputs = _stream_list(raw.get("outputs"), "outputs", filename, raw.line_of("outputs"), issues)
    side = raw.get("side_inputs") or {}
    if not isinstance(side, dict):
        issues.append(Issue("'side_inputs' must be a mapping of name: value", filename, raw.line_of("side_inputs")))
        side = {}
    graph.side_inputs = dict(side)
    for name, spec in (raw.get("executors") or {}).items():
        line = raw["executors"].line_of(name)
        threads = spec.get("threads", 1) if isinstance(spec, dict) else spec
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            issues.append(Issue(f"executor '{name}': 'threads' must be a positive integer, got {threads!r}", filename, line))
            threads = 1
        graph.executors[str(name)] = ExecutorConfig(threads=threads)
    cli = raw.get("cli") or {}
    for flag, target in cli.items():
        targets = [target] if isinstance(target, str) else list(target or [])
        graph.cli[str(flag)] = [str(t) for t in targets]
    nodes = raw.get("nodes")
    if nodes is None:
        issues.append(Issue("the graph has no 'nodes:' list", filename, raw.line or 1))
        return
    if not isinstance(nodes, list):
        issues.append(Issue("'nodes' must be a list of nodes", filename, raw.line_of("nodes")))
        return
    for item in nodes:
        node = _parse_node(item, filename, issues)
        if node is not None:
            graph.nodes.append(node)


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


def _parse_node(item: Any, filename: str, issues: list[Issue]) -> NodeConfig | None:
    line = getattr(item, "line", 0)
    if not isinstance(item, dict):
        issues.append(Issue(f"each node must be a mapping with 'calculator:', got {item!r}", filename, line))
        return None
    calc = item.get("calculator")
    if not isinstance(calc, str) or not calc:
        issues.append(Issue("node has no 'calculator:' (the registered calculator name or a subgraph)", filename, line))
        return None
    node = NodeConfig(calculator=calc, name=str(item.get("name") or ""), file=filename, line=line)

    def bad(key: str, message: str) -> None:
        issues.append(node.issue(message, item.line_of(key)))

    for key in item:
        if key not in NODE_KEYS:
            bad(key, _unknown("key", key, NODE_KEYS, "node"))
    if node.name and not _NAME.match(node.name):
        bad("name", f"node name '{node.name}' must be letters, digits and underscores (it is used in --set NAME.option=value)")
    for tag, spec in (item.get("inputs") or {}).items():
        refs = _input_refs(spec, node, tag, item["inputs"].line_of(tag), issues)
        if refs is not None:
            node.inputs[str(tag)] = refs
            if not isinstance(spec, list):
                node.scalar_ports.add(str(tag))
    for tag, spec in (item.get("outputs") or {}).items():
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
    node.option_lines = {k: options.line_of(k) for k in options} if isinstance(options, LineDict) else {}
    if "input_policy" in item:
        if item["input_policy"] in INPUT_POLICIES:
            node.input_policy = item["input_policy"]
        else:
            bad("input_policy", f"input_policy must be one of {', '.join(INPUT_POLICIES)}, got {item['input_policy']!r}")
    if "queue" in item:
        node.queue = _queue(item["queue"], node, item.line_of("queue"), issues)
    if "executor" in item:
        node.executor = str(item["executor"])
    on_error = item.get("on_error", "fail")
    if on_error in ERROR_POLICIES:
        node.on_error = on_error
    else:
        bad("on_error", f"on_error must be one of {', '.join(ERROR_POLICIES)}, got {on_error!r}")
    enabled = item.get("enabled", True)
    if isinstance(enabled, bool):
        node.enabled = enabled
    else:
        bad("enabled", f"enabled must be true or false, got {enabled!r}")
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
                issues.append(node.issue(f"input {tag}: {_unknown('key', sorted(extra)[0], ('stream', 'back_edge', 'queue'), 'input')}", line))
            back_edge = s.get("back_edge", False)
            if not isinstance(back_edge, bool):
                issues.append(node.issue(f"input {tag}: back_edge must be true or false, got {back_edge!r}", line))
                back_edge = False
            queue = _queue(s["queue"], node, line, issues) if "queue" in s else None
            refs.append(InputRef(s["stream"], back_edge, queue))
        else:
            issues.append(node.issue(f"input {tag}: expected a stream name, {{stream: NAME, back_edge: BOOL, queue: ...}} "
                                     f"or a list of them, got {s!r}", line))
            return None
    return refs


def _queue(spec: Any, node: NodeConfig, line: int, issues: list[Issue]) -> QueueConfig | None:
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = {"size": spec}
    if not isinstance(spec, dict):
        issues.append(node.issue(f"queue must be {{size: N, overflow: {'|'.join(OVERFLOW_POLICIES)}}}, got {spec!r}", line))
        return None
    size = spec.get("size", DEFAULT_QUEUE_SIZE)
    overflow = spec.get("overflow", "block")
    for key in spec:
        if key not in ("size", "overflow"):
            issues.append(node.issue("queue: " + _unknown("key", key, ("size", "overflow"), "queue"), line))
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        issues.append(node.issue(f"queue size must be a positive integer, got {size!r}", line))
        size = DEFAULT_QUEUE_SIZE
    if overflow not in OVERFLOW_POLICIES:
        issues.append(node.issue(f"queue overflow must be one of {', '.join(OVERFLOW_POLICIES)}, got {overflow!r}", line))
        overflow = "block"
    return QueueConfig(size, overflow)


def _unknown(what: str, key: Any, valid: tuple | list, where: str) -> str:
    close = difflib.get_close_matches(str(key), [str(v) for v in valid], n=1, cutoff=0.6)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"unknown {where} {what} '{key}'.{hint} Valid: {', '.join(map(str, valid))}"


def _assign_default_names(graph: GraphConfig) -> None:
    taken = {n.name for n in graph.nodes if n.name}
    seen: dict[str, int] = {}
    for node in graph.nodes:
        if node.name:
            if node.name in seen:
                graph.issues.append(node.issue(f"node name '{node.name}' is used twice (also at line {seen[node.name]})"))
            seen[node.name] = node.line
            continue
        base = _snake(node.calculator)
        name, i = base, 1
        while name in taken:
            i += 1
            name = f"{base}_{i}"
        taken.add(name)
        node.name = name


def _snake(calculator: str) -> str:
    stem = Path(calculator).stem if calculator.endswith((".yaml", ".yml")) else calculator
    if stem.endswith("Calculator") and stem != "Calculator":
        stem = stem[: -len("Calculator")]
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", stem).lower()


# ---------------------------------------------------------------- overrides


def apply_overrides(graph: GraphConfig, overrides: list[str]) -> None:
    """``NODE.OPTION=VALUE`` sets an option; ``NODE.queue|executor|on_error|input_policy|enabled=VALUE`` a node
    field; ``side_inputs.NAME=VALUE`` a side input. VALUE is read as YAML (``3``, ``true``, ``[a, b]``)."""
    for text in overrides:
        target, sep, value_text = text.partition("=")
        node_name, dot, key = target.rpartition(".")
        if not sep or not dot or not node_name or not key:
            raise GraphConfigError(f"--set {text}: expected NODE.OPTION=VALUE (for example limiter.max_in_flight=2)")
        try:
            value = yaml.safe_load(value_text) if value_text.strip() else ""
        except yaml.YAMLError as exc:
            raise GraphConfigError(f"--set {text}: value is not valid YAML: {exc}") from None
        if node_name == "side_inputs":
            graph.side_inputs[key] = value
            continue
        nodes = [n for n in graph.nodes if n.name == node_name]
        if not nodes:
            names = [n.name for n in graph.nodes]
            close = difflib.get_close_matches(node_name, names, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise GraphConfigError(f"--set {text}: the graph has no node '{node_name}'.{hint} Nodes: {', '.join(names)}")
        set_node_value(nodes[0], key, value, f"--set {text}")


def set_node_value(node: NodeConfig, key: str, value: Any, where: str) -> None:
    if key == "enabled":
        if not isinstance(value, bool):
            raise GraphConfigError(f"{where}: enabled must be true or false")
        node.enabled = value
    elif key == "executor":
        node.executor = str(value)
    elif key == "on_error":
        if value not in ERROR_POLICIES:
            raise GraphConfigError(f"{where}: on_error must be one of {', '.join(ERROR_POLICIES)}")
        node.on_error = value
    elif key == "input_policy":
        if value not in INPUT_POLICIES:
            raise GraphConfigError(f"{where}: input_policy must be one of {', '.join(INPUT_POLICIES)}")
        node.input_policy = value
    elif key == "queue":
        issues: list[Issue] = []
        node.queue = _queue(value, node, node.line, issues)
        if issues:
            raise GraphConfigError(f"{where}: {issues[0].message}")
    else:
        node.options[key] = value
        node.option_lines.pop(key, None)


def raise_if_issues(graph: GraphConfig) -> None:
    if graph.issues:
        raise GraphValidationError(graph.issues)
