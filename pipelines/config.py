"""A graph as data, and the front door that builds it: parse -> expand subgraphs -> apply overrides.

Each step is a module with one public function (`parse.parse_file`, `subgraphs.expand_subgraphs`,
`overrides.apply_overrides`); `validate.validate` then checks the result against the registry. Structural
faults are collected as `Issue`s (file, line, node) rather than raised one at a time, so a user sees every
fault of a graph at once. The rules for a node's fields (`input_policy`, `on_error`, `enabled`, `executor`,
`queue`, `max_in_flight`) live here, in `set_node_field`, and nowhere else: the parser and the overrides both call it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import Issue

OVERFLOW_POLICIES = ("block", "drop_oldest", "drop_newest")
INPUT_POLICIES = ("sync", "immediate")
ERROR_POLICIES = ("fail", "skip")
DEFAULT_QUEUE_SIZE = 8
#: The fields of a node besides its calculator, ports and options (what `--set NODE.FIELD=VALUE` may set).
NODE_FIELDS = ("input_policy", "queue", "executor", "on_error", "enabled", "max_in_flight")


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
    #: option values as the calculator gets them (subgraph references substituted)
    options: dict[str, Any] = field(default_factory=dict)
    input_policy: str | None = None
    queue: QueueConfig | None = None
    executor: str | None = None
    on_error: str = "fail"
    enabled: bool = True
    #: calls of the calculator that may run at once (up to what its class allows), still emitted in order
    max_in_flight: int = 1
    file: str | None = None
    line: int = 0
    option_lines: dict[str, int] = field(default_factory=dict)
    #: ports given as a single stream (not a list), to check against `.multiple()`
    scalar_ports: set[str] = field(default_factory=set)
    #: option values as written, before `${options.NAME}` substitution (what overrides change)
    raw_options: dict[str, Any] = field(default_factory=dict)
    #: the folder a relative path in each option is relative to (the file that wrote it, or the working
    #: directory for a command-line value); options not listed here: the node's own file's folder
    option_bases: dict[str, Path] = field(default_factory=dict)
    #: the subgraph instance this node was inlined from, if any ("face_detection")
    parent: str | None = None
    #: the folder of the file that declared the node (None: text without a folder, the working directory)
    home: Path | None = None

    def issue(self, message: str, line: int | None = None) -> Issue:
        return Issue(message, self.file, line or self.line, self.name, self.calculator)

    def base_dir(self, option: str) -> Path | None:
        """The folder a relative path in `option` is relative to (None: no file, the working directory)."""
        return self.option_bases.get(option, self.home)


@dataclass
class ExecutorConfig:
    """``{threads: N}``: N worker threads. ``{processes: N}``: N worker processes (`process_executor`), driven by
    as many threads (`threads` is then N too, so whatever counts an executor's threads counts its cores)."""

    threads: int = 1
    processes: int = 0


@dataclass
class SubgraphInstance:
    """One use of a subgraph in a graph: the node it replaced and the option values its nodes read."""

    name: str
    file: str
    #: options the subgraph declares, with their defaults
    declared: dict[str, Any]
    #: option values the using node wrote (may reference the enclosing subgraph's options)
    raw_options: dict[str, Any]
    raw_bases: dict[str, Path]
    parent: str | None = None
    #: declared defaults with the using node's values applied and substituted
    values: dict[str, Any] = field(default_factory=dict)
    value_bases: dict[str, Path] = field(default_factory=dict)


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
    #: a subgraph file's ports (TAG -> inner stream) and declared options; empty for a top-level graph
    input_ports: dict[str, str] = field(default_factory=dict)
    output_ports: dict[str, str] = field(default_factory=dict)
    declared_options: dict[str, Any] = field(default_factory=dict)
    #: subgraph instances by name, filled when subgraphs are expanded
    subgraphs: dict[str, SubgraphInstance] = field(default_factory=dict)
    #: faults found while reading; validation reports them with its own
    issues: list[Issue] = field(default_factory=list)

    def node(self, name: str) -> NodeConfig:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def set_default_threads(self, threads: int) -> None:
        """Nodes that name no executor share `threads` threads (the "default" executor), as ``--threads`` asks."""
        from .errors import GraphConfigError
        from .executor import DEFAULT_EXECUTOR

        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise GraphConfigError(f"--threads must be a positive integer, got {threads!r}")
        self.executors[DEFAULT_EXECUTOR] = ExecutorConfig(threads=threads)

    def share_threads(self, threads: int) -> None:
        """Every node on a thread executor, or on none, shares the default executor's `threads` threads; process
        executors keep their nodes. The graph's own split of threads is for one stream; several streams in one
        process are the parallelism, and hand-offs between a stream's threads cost them turns at the GIL."""
        pooled = {name for name, ex in self.executors.items() if not ex.processes}
        for node in self.nodes:
            if node.executor in pooled:
                node.executor = None
        for name in pooled:
            del self.executors[name]
        self.set_default_threads(threads)


# ---------------------------------------------------------------- the rules for a node's fields


def set_node_field(node: NodeConfig, key: str, value: Any) -> str | None:
    """Set one of `NODE_FIELDS` from a YAML value; returns what is wrong with the value (the field is then left
    as it was), or None."""
    if key == "enabled":
        if not isinstance(value, bool):
            return f"enabled must be true or false, got {value!r}"
        node.enabled = value
    elif key == "executor":
        if not isinstance(value, str) or not value:
            return f"executor must be the name of an executor, got {value!r}"
        node.executor = value
    elif key == "max_in_flight":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return f"max_in_flight must be a whole number >= 1, got {value!r}"
        node.max_in_flight = value
    elif key == "on_error":
        if value not in ERROR_POLICIES:
            return f"on_error must be one of {', '.join(ERROR_POLICIES)}, got {value!r}"
        node.on_error = value
    elif key == "input_policy":
        if value not in INPUT_POLICIES:
            return f"input_policy must be one of {', '.join(INPUT_POLICIES)}, got {value!r}"
        node.input_policy = value
    elif key == "queue":
        queue, error = parse_queue(value)
        if error:
            return error
        node.queue = queue
    else:
        raise KeyError(key)
    return None


def parse_queue(spec: Any) -> tuple[QueueConfig | None, str | None]:
    """``8`` or ``{size: 8, overflow: block|drop_oldest|drop_newest}`` -> (QueueConfig, None) or (None, what is
    wrong: every fault, joined by "; ")."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = {"size": spec}
    if not isinstance(spec, dict):
        return None, f"queue must be {{size: N, overflow: {'|'.join(OVERFLOW_POLICIES)}}}, got {spec!r}"
    errors = ["queue: " + unknown_key_message("key", key, ("size", "overflow"), "queue")
              for key in spec if key not in ("size", "overflow")]
    size = spec.get("size", DEFAULT_QUEUE_SIZE)
    overflow = spec.get("overflow", "block")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        errors.append(f"queue size must be a positive integer, got {size!r}")
    if overflow not in OVERFLOW_POLICIES:
        errors.append(f"queue overflow must be one of {', '.join(OVERFLOW_POLICIES)}, got {overflow!r}")
    if errors:
        return None, "; ".join(errors)
    return QueueConfig(size, overflow), None


def unknown_key_message(what: str, key: Any, valid, where: str) -> str:
    import difflib

    close = difflib.get_close_matches(str(key), [str(v) for v in valid], n=1, cutoff=0.6)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"unknown {where} {what} '{key}'.{hint} Valid: {', '.join(map(str, valid)) or '(none)'}"


# ---------------------------------------------------------------- the front door


def load_graph(path: str | Path, overrides: list | None = None) -> GraphConfig:
    """Read a graph file, expand its subgraphs and apply overrides (``NODE.KEY=VALUE`` strings or `Override`s).
    Does not validate: `Graph(config)` does."""
    from .parse import parse_file

    return _finish(parse_file(Path(path)), overrides)


def parse_graph(text: str, filename: str = "<graph>", base_dir: str | Path = ".",
                overrides: list | None = None) -> GraphConfig:
    """The same for YAML text; relative paths in it are relative to `base_dir`."""
    from .parse import parse_text

    return _finish(parse_text(text, filename, Path(base_dir)), overrides)


def _finish(graph: GraphConfig, overrides: list | None) -> GraphConfig:
    from .overrides import apply_overrides
    from .subgraphs import expand_subgraphs

    expand_subgraphs(graph)
    if overrides:
        apply_overrides(graph, overrides)
    return graph
