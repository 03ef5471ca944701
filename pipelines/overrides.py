"""Step 3 of the front end: overrides, applied to the expanded graph.

An override sets a node's option (``limiter.max_in_flight=2``), one of its fields (``display.enabled=false``,
``detector.queue=16``), an option of a subgraph instance (``face_detection.min_score_thresh=0.7``: its inner
nodes see the new value), an inner node's option (``face_detection/inference.threads=2``) or a side input
(``side_inputs.NAME=VALUE``). ``--set`` and the command-line flags a graph's ``cli:`` section maps
(`flag_overrides`) both become `Override`s; so do the flags of apps built on graphs.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import NODE_FIELDS, GraphConfig, set_node_field, unknown_key_message
from .errors import GraphConfigError
from .subgraphs import instance_nodes, render_options


@dataclass(frozen=True)
class Override:
    """Set `key` of node (or subgraph instance) `node` to `value`. `origin` names where it came from, for
    errors (``--set a.b=1``, ``--output``); `base` is the folder a relative path in `value` is relative to (the
    working directory for anything typed on a command line)."""

    node: str
    key: str
    value: Any
    origin: str = ""
    base: Path | None = None


def parse_override(text: str, base: Path | None = None) -> Override:
    """``NODE.KEY=VALUE``, VALUE read as YAML (``3``, ``true``, ``[a, b]``)."""
    target, sep, value_text = text.partition("=")
    node, dot, key = target.rpartition(".")
    if not sep or not dot or not node or not key:
        raise GraphConfigError(f"--set {text}: expected NODE.OPTION=VALUE (for example limiter.max_in_flight=2)")
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else ""
    except yaml.YAMLError as exc:
        raise GraphConfigError(f"--set {text}: value is not valid YAML: {exc}") from None
    return Override(node, key, value, f"--set {text}", base if base is not None else Path.cwd())


def apply_overrides(graph: GraphConfig, overrides: list[Override | str]) -> None:
    """Apply overrides in order; raises GraphConfigError naming the override for a node or key that does not
    exist or a field value that is wrong (option values are checked by validation, with the rest)."""
    for item in overrides:
        override = parse_override(item) if isinstance(item, str) else item
        _apply(graph, override)
    graph.issues.extend(i for i in render_options(graph) if i not in graph.issues)


def flag_overrides(graph: GraphConfig, flag: str, value: Any, enable: bool = False,
                   base: Path | None = None) -> list[Override]:
    """What a command-line flag sets, as the graph's ``cli:`` section maps it: ``output: video_writer.path`` sets
    that option (and, with `enable`, switches the node on); a target without an option (``display: display``)
    stands for the node itself. Raises GraphConfigError when the graph does not take the flag."""
    targets = graph.cli.get(flag)
    option = f"--{flag.replace('_', '-')}"
    if not targets:
        raise GraphConfigError(f"{graph.file}: this graph does not take {option} "
                               f"(its 'cli:' section maps: {', '.join(graph.cli) or 'nothing'})")
    found = []
    for target in targets:
        node, _, key = target.partition(".")
        if node not in graph.node_names() and node not in graph.subgraphs:
            raise GraphConfigError(f"{graph.file}: cli: '{flag}' names node '{node}', which the graph does not have")
        if enable:
            found.append(Override(node, "enabled", True, option, base))
        if key:
            found.append(Override(node, key, value, option, base if base is not None else Path.cwd()))
    return found


def thread_shares(config: GraphConfig, overrides: list[Override], threads: int, why: str) -> list[Override]:
    """Set `threads` on every node whose calculator names a `threads_option` (a file decoder's threads) that
    neither the graph nor an override sets: a share of the cores when several graphs run at once."""
    from .registry import RegistryError, get_calculator

    found = []
    for node in config.nodes:
        try:
            option = get_calculator(node.calculator).threads_option
        except RegistryError:
            continue  # an unknown calculator: validation reports it
        if option and option not in node.raw_options and not any(
                o.node == node.name and o.key == option for o in overrides):
            found.append(Override(node.name, option, threads, why))
    return found


def _apply(graph: GraphConfig, o: Override) -> None:
    where = o.origin or f"{o.node}.{o.key}"
    if o.node == "side_inputs":
        graph.side_inputs[o.key] = o.value
        return
    instance = graph.subgraphs.get(o.node)
    if instance is not None:
        if o.key in NODE_FIELDS:
            for node in instance_nodes(graph, o.node):
                _set_field(node, o.key, o.value, where)
            return
        if o.key not in instance.declared:
            raise GraphConfigError(f"{where}: " + unknown_key_message(
                "option", o.key, sorted(instance.declared), f"subgraph '{Path(instance.file).stem}' (node {o.node})"))
        instance.raw_options[o.key] = o.value
        instance.raw_bases[o.key] = o.base
        return
    try:
        node = graph.node(o.node)
    except KeyError:
        names = graph.node_names() + list(graph.subgraphs)
        close = difflib.get_close_matches(o.node, names, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise GraphConfigError(f"{where}: the graph has no node '{o.node}'.{hint} Nodes: {', '.join(names)}") from None
    if o.key in NODE_FIELDS:
        _set_field(node, o.key, o.value, where)
        return
    node.raw_options[o.key] = o.value
    node.options[o.key] = o.value
    node.option_lines.pop(o.key, None)
    if o.base is not None:
        node.option_bases[o.key] = o.base
    else:
        node.option_bases.pop(o.key, None)


def _set_field(node, key: str, value: Any, where: str) -> None:
    error = set_node_field(node, key, value)
    if error:
        raise GraphConfigError(f"{where}: {error}")
