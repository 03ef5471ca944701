"""Whole-graph validation before the first packet: every fault found, each with file, line, node, calculator."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from . import registry
from .config import INPUT_POLICIES, GraphConfig, NodeConfig, QueueConfig
from .errors import GraphValidationError, Issue, PluginLoadError
from .options import build_options
from .ports import type_name, types_compatible
from .subgraphs import subgraph_names


class ResolvedInput(NamedTuple):
    """One stream a node consumes on one of its input ports."""

    tag: str
    index: int  # the stream's place on a `.multiple()` port
    stream: str
    back_edge: bool
    queue: QueueConfig


class ResolvedOutput(NamedTuple):
    tag: str
    index: int
    stream: str


@dataclass
class ResolvedNode:
    config: NodeConfig
    cls: type
    options: Any
    input_policy: str
    inputs: list[ResolvedInput] = field(default_factory=list)
    outputs: list[ResolvedOutput] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.config.name


@dataclass
class GraphPlan:
    """A validated graph: what the scheduler runs."""

    config: GraphConfig
    nodes: list[ResolvedNode]
    producers: dict[str, tuple[str, Any]]  # stream -> (node name or "<graph input>", payload type)


def validate(graph: GraphConfig) -> GraphPlan:
    issues: list[Issue] = list(graph.issues)
    nodes: list[ResolvedNode] = []
    active = [n for n in graph.nodes if n.enabled]
    for node in active:
        resolved = _resolve_node(node, graph, issues)
        if resolved is not None:
            nodes.append(resolved)
    resolved_names = {rn.name for rn in nodes}
    unresolved_outputs = {s for n in active if n.name not in resolved_names for ss in n.outputs.values() for s in ss}
    producers = _check_streams(graph, nodes, issues, unresolved_outputs)
    if not issues:
        _check_cycles(nodes, producers, issues)
    if issues:
        raise GraphValidationError(_dedupe(issues))
    return GraphPlan(graph, nodes, producers)


def _dedupe(issues: list[Issue]) -> list[Issue]:
    seen, out = set(), []
    for i in issues:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def _resolve_node(node: NodeConfig, graph: GraphConfig, issues: list[Issue]) -> ResolvedNode | None:
    try:
        cls = registry.get_calculator(node.calculator)
    except PluginLoadError as exc:
        issues.append(node.issue(str(exc)))
        return None
    except registry.RegistryError:
        msg = registry.unknown_calculator_message(node.calculator, subgraph_names(node.home))
        issues.append(node.issue(msg))
        return None
    options, errors = build_options(cls.Options, node.options, node.base_dir)
    for err in errors:
        issues.append(node.issue(str(err), node.option_lines.get(err.key or "", node.line)))
    if options is not None:
        try:
            found = list(cls.check(options))
        except Exception as exc:  # a check that breaks must not hide the graph's other faults
            found = [f"checking the options failed: {type(exc).__name__}: {exc}"]
        for message in found:
            issues.append(node.issue(message))
    policy = node.input_policy or cls.input_policy
    in_ports, out_ports = cls.input_ports(), cls.output_ports()
    resolved = ResolvedNode(node, cls, options, policy)
    for tag, refs in node.inputs.items():
        port = in_ports.get(tag)
        if port is None:
            issues.append(node.issue(_bad_port("input", tag, in_ports)))
            continue
        if len(refs) > 1 and not port.is_multiple:
            issues.append(node.issue(f"input {tag} takes one stream, got {len(refs)}: {', '.join(r.stream for r in refs)}"))
        for index, ref in enumerate(refs):
            queue = ref.queue or node.queue or QueueConfig()
            resolved.inputs.append(ResolvedInput(tag, index, ref.stream, ref.back_edge, queue))
    for tag, port in in_ports.items():
        if tag not in node.inputs and not port.is_optional:
            issues.append(node.issue(f"required input {tag} ({port.type_name}) is not connected"))
    for tag, streams in node.outputs.items():
        port = out_ports.get(tag)
        if port is None:
            issues.append(node.issue(_bad_port("output", tag, out_ports)))
            continue
        if len(streams) > 1 and not port.is_multiple:
            issues.append(node.issue(f"output {tag} produces one stream, got {len(streams)}: {', '.join(streams)}"))
        for index, stream in enumerate(streams):
            resolved.outputs.append(ResolvedOutput(tag, index, stream))
    if node.executor and node.executor not in graph.executors:
        valid = ", ".join(graph.executors) or "(none declared under 'executors:')"
        issues.append(node.issue(f"unknown executor '{node.executor}'. Valid: {valid}"))
    if policy not in INPUT_POLICIES:
        issues.append(node.issue(f"calculator declares an unknown input policy {policy!r}"))
    _check_max_in_flight(graph, node, cls, issues)
    executor = graph.executors.get(node.executor) if node.executor else None
    if executor is not None and executor.processes and options is not None:
        from .process_executor import check_node

        issues.extend(node.issue(f"on process executor '{node.executor}': {fault}")
                      for fault in check_node(cls, options))
    return resolved


def _check_max_in_flight(graph: GraphConfig, node: NodeConfig, cls: type, issues: list[Issue]) -> None:
    n = node.max_in_flight
    if n == 1:
        return
    allowed = int(getattr(cls, "max_in_flight", 1))
    if n > allowed:
        why = ("is not declared safe to call from several threads at once (its class attribute max_in_flight "
               "is 1)" if allowed == 1 else f"allows at most {allowed} (its class attribute max_in_flight)")
        issues.append(node.issue(f"max_in_flight: {n} but {cls.__name__} {why}"))
    if cls.is_source():
        issues.append(node.issue(f"max_in_flight: {n} on a source node: only a node with inputs can run calls "
                                 "in parallel"))
    ex = graph.executors.get(node.executor) if node.executor else None
    if ex is not None and ex.threads < n:
        unit, units = ("process", "processes") if ex.processes else ("thread", "threads")
        issues.append(node.issue(f"max_in_flight: {n} but executor '{node.executor}' has {ex.threads} "
                                 f"{unit if ex.threads == 1 else units}; give it at least {n} ({units}: {n})"))


def _bad_port(kind: str, tag: str, ports: dict) -> str:
    close = difflib.get_close_matches(tag, list(ports), n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"unknown {kind} port '{tag}'.{hint} Valid: {', '.join(ports) or '(none)'}"


def _check_streams(graph: GraphConfig, nodes: list[ResolvedNode], issues: list[Issue],
                   unresolved_outputs: set[str]) -> dict[str, tuple[str, Any]]:
    producers: dict[str, tuple[str, Any]] = {}
    where: dict[str, NodeConfig | None] = {}
    # A node already reported as unknown still "produces" its outputs, so its consumers are not reported too.
    known_elsewhere = unresolved_outputs
    for stream in graph.inputs:
        producers[stream] = ("<graph input>", Any)
        where[stream] = None
    for rn in nodes:
        out_ports = rn.cls.output_ports()
        for tag, _, stream in rn.outputs:
            if stream in producers:
                first = where[stream]
                by = f'node "{first.name}"' if first else "the graph's inputs"
                issues.append(rn.config.issue(f"stream '{stream}' is produced twice: by output {tag} here and by {by}"))
                continue
            producers[stream] = (rn.name, out_ports[tag].payload_type)
            where[stream] = rn.config
    disabled = {s for n in graph.nodes if not n.enabled for ss in n.outputs.values() for s in ss}
    for rn in nodes:
        in_ports = rn.cls.input_ports()
        for tag, _, stream, _, _ in rn.inputs:
            if stream in known_elsewhere and stream not in producers:
                continue
            if stream not in producers:
                hint = ""
                if stream in disabled:
                    hint = " (its producer is disabled)"
                else:
                    close = difflib.get_close_matches(stream, list(producers), n=1, cutoff=0.6)
                    if close:
                        hint = f". Did you mean '{close[0]}'?"
                issues.append(rn.config.issue(
                    f"input {tag} consumes stream '{stream}', which no node produces and is not a graph input{hint}"))
                continue
            producer, produced_type = producers[stream]
            consumed_type = in_ports[tag].payload_type
            if not types_compatible(produced_type, consumed_type):
                issues.append(rn.config.issue(
                    f"input {tag} expects {type_name(consumed_type)}, but stream '{stream}' carries "
                    f"{type_name(produced_type)} (from node \"{producer}\")"))
    for stream in graph.outputs:
        if stream not in producers and stream not in known_elsewhere:
            issues.append(Issue(f"graph output '{stream}' is produced by no node", graph.file))
    return producers


def _check_cycles(nodes: list[ResolvedNode], producers: dict[str, tuple[str, Any]], issues: list[Issue]) -> None:
    by_name = {rn.name: rn for rn in nodes}
    edges: dict[str, set[str]] = {rn.name: set() for rn in nodes}
    for rn in nodes:
        for _, _, stream, back_edge, _ in rn.inputs:
            producer = producers.get(stream, ("",))[0]
            if not back_edge and producer in edges:
                edges[producer].add(rn.name)
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for nxt in sorted(edges[name]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[name] = 2
        path.pop()
        return None

    for name in edges:
        if name not in state:
            cycle = visit(name)
            if cycle:
                first = by_name[cycle[-2]]
                issues.append(first.config.issue(
                    "cycle without a declared back edge: " + " -> ".join(cycle)
                    + ". Mark the input that closes the loop with {stream: NAME, back_edge: true}"))
                return
