"""The calculator API: typed ports, a frozen Options dataclass, and the open/process/close lifecycle.

Lifecycle, exactly:
- ``open(ctx)`` once, before any packet and before any thread starts (nodes open in graph order, on the
  caller's thread). ``ctx.side_inputs`` is set.
- ``process(ctx)`` for every input set the node's input policy delivers (``sync``: all inputs of one
  settled timestamp together; ``immediate``: one packet at a time). A node with no inputs is a source:
  ``process`` is called repeatedly until it returns or raises ``Stop``.
- ``close(ctx)`` once if ``open`` succeeded, after the last ``process``, on success, error or Ctrl-C: on the
  node's thread when its inputs end (back edges excepted, unless ``awaits_back_edges()`` says a packet on one is
  still owed), on the caller's thread after an error. Packets sent from ``close`` are
  delivered on success.
A calculator instance is never called from two threads at once, unless its class opts in: a class that sets
``max_in_flight = N`` (N > 1) declares ``process`` safe to run up to N times at once on the one instance (it keeps
no state between calls, or guards what it keeps), and a node of it may then say ``max_in_flight: N`` or less.
Its calls then overlap on the node's executor, each with a context of its own, and their outputs are still
delivered in timestamp order; ``open`` and ``close`` are never concurrent with anything.
On a process executor (``executors: {NAME: {processes: N}}``) all of this holds inside worker processes instead:
one instance per call the node may have in flight, each in a worker of its own (see `process_executor`).
"""
from __future__ import annotations

import dataclasses
import inspect
import logging
from typing import Any, Callable, ClassVar, Mapping

from .packet import Stop
from .ports import Input, Output, Port


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """Options of a calculator that takes none."""


class Calculator:
    """Base class. Subclasses declare ports as class constants and may declare ``Options``."""

    Options: ClassVar[type] = NoOptions
    #: The input policy used when the graph file does not say: "sync" or "immediate".
    input_policy: ClassVar[str] = "sync"
    #: After each ``process``, raise every output's timestamp bound past the input timestamp, so a node
    #: that emits nothing at a timestamp never stalls a downstream join. Turn off to manage bounds yourself.
    propagate_bounds: ClassVar[bool] = True
    #: How many ``process`` calls may run at once on one instance (see the module docstring). A node's
    #: ``max_in_flight:`` may not exceed it.
    max_in_flight: ClassVar[int] = 1
    #: The option that sets how many threads the node's own native work uses (a decoder's), if any. A batch
    #: running several files at once sets it to each file's share of the cores, where the graph leaves it unset.
    threads_option: ClassVar[str | None] = None

    def __init__(self, options: Any = None):
        self.options = options if options is not None else self.Options()

    def open(self, ctx: "CalculatorContext") -> None:
        pass

    def process(self, ctx: "CalculatorContext") -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement process(ctx)")

    def close(self, ctx: "CalculatorContext") -> None:
        pass

    def awaits_back_edges(self) -> bool:
        """Asked by the scheduler once every input that is not a back edge has ended: True keeps the node open
        until a back-edge packet it still needs arrives (PreviousLoopbackCalculator holding timestamps whose loop
        value is not in yet); ``close`` follows once it answers False. Runs under the scheduler's lock: answer from
        the calculator's own state, at once."""
        return False

    @classmethod
    def may_block(cls, options: Any) -> bool:
        """Whether ``process`` may wait on the world rather than compute: for a camera's or a network stream's next
        frame, or to pace a file at its frame rate. Where threads are shared (several streams in one process), a
        graph with such a node keeps a thread for it, so the rest of the graph runs while it waits."""
        return False

    @classmethod
    def check(cls, options: Any) -> "list[str]":
        """Checks of a node's options that need more than their types (a model file's input shape, an engine's
        own options), run at validation, before anything opens. Return one message per fault (the validator adds
        file, line and node). Must not load models or start anything expensive."""
        return []

    @classmethod
    def input_ports(cls) -> dict[str, Input]:
        return {p.tag: p for p in _ports(cls, Input)}

    @classmethod
    def output_ports(cls) -> dict[str, Output]:
        return {p.tag: p for p in _ports(cls, Output)}

    @classmethod
    def is_source(cls) -> bool:
        return not cls.input_ports()


def _ports(cls: type, kind: type) -> list[Port]:
    seen: dict[str, Port] = {}
    for klass in reversed(cls.__mro__):
        for value in vars(klass).values():
            if isinstance(value, kind):
                seen[value.tag] = value
    return list(seen.values())


class CalculatorContext:
    """What a calculator sees of the graph. One per node, reused across calls."""

    __slots__ = ("node_name", "calculator_name", "options", "side_inputs", "logger", "timestamp",
                 "_inputs", "_outputs", "_node")

    def __init__(self, node, options: Any, side_inputs: Mapping[str, Any]):
        self._node = node
        self.node_name: str = node.name
        self.calculator_name: str = node.calculator_name
        self.options = options
        self.side_inputs = side_inputs
        self.logger = logging.getLogger(f"framegraph.{node.name}")
        self.timestamp: int | None = None
        self._inputs: Mapping[str, Any] = {}
        self._outputs: list = []

    def begin(self, timestamp: int | None, inputs: Mapping[str, Any]) -> list:
        """Called by the scheduler only, before each open/process/close call: set the current timestamp and the
        input payloads (tag -> payload, a list for a ``.multiple()`` port), and return a fresh outbox, the list
        that `send` and `set_next_timestamp_bound` append ``(tag, index, timestamp, value)`` to (index -1 for a
        bound). The scheduler delivers the outbox once the call returns."""
        self.timestamp = timestamp
        self._inputs = inputs
        outbox = self._outputs = []
        return outbox

    def get(self, port: Port | str, default: Any = None) -> Any:
        """The payload on `port` at the current timestamp, or `default`. A `.multiple()` port gives a list."""
        tag = port if isinstance(port, str) else port.tag
        value = self._inputs.get(tag, default)
        return default if value is None else value

    def has(self, port: Port | str) -> bool:
        tag = port if isinstance(port, str) else port.tag
        value = self._inputs.get(tag)
        if isinstance(value, list):
            return any(v is not None for v in value)
        return value is not None

    def send(self, port: Port | str, value: Any, timestamp: int | None = None, index: int = 0) -> None:
        """Emit `value` on `port` at `timestamp` (default: the current one). Delivered after process returns.
        Timestamps run from 0 to ``MAX_TIMESTAMP`` and strictly increase per stream; any other is a
        TimestampError naming the stream, which fails the graph."""
        tag = port if isinstance(port, str) else port.tag
        ts = self.timestamp if timestamp is None else int(timestamp)
        if ts is None:
            raise ValueError(f'node "{self.node_name}": send() on {tag} needs a timestamp '
                             "(sources have no current timestamp; pass timestamp=...)")
        self._outputs.append((tag, index, ts, value))

    def wanted(self, port: Port | str) -> bool:
        """Whether anything reads the content of what is sent on output `port`: a consumer whose input is not
        `Input.timing()`, or an observer that did not say content=False. When not, a node may send a cheaper
        stand-in with the same timestamp and metadata (the overlay: the frame undrawn). True where unknown."""
        outputs = getattr(self._node, "outputs", None)
        if outputs is None:  # a process executor's worker: the graph's wiring is in the parent
            return True
        tag = port if isinstance(port, str) else port.tag
        return any(s is not None and s.content_readers for s in outputs.get(tag, ()))

    def set_next_timestamp_bound(self, port: Port | str, timestamp: int) -> None:
        """Promise that nothing earlier than `timestamp` will be sent on `port`. A bound of ``DONE`` closes the
        port's streams (nothing can follow); a bound past it is a TimestampError."""
        tag = port if isinstance(port, str) else port.tag
        self._outputs.append((tag, -1, int(timestamp), None))

    def report_problem(self, message: str) -> None:
        """Record a problem that did not stop the graph (a truncated file decoded up to the damage): logged as a
        warning now, listed at the end, and the CLI exits non-zero."""
        self._node.runner.report_problem(f'node "{self.node_name}": {message}')

    def set_status(self, status: str) -> None:
        """Publish what the node is doing, in a few words ("reconnecting (attempt 3)"): the latest one shows in
        the stats (``NodeStatsRow.status``, ``--stats``) until replaced; "" clears it. Cheap; call it on change."""
        self._node.stats.status = str(status)

    def stop_graph(self) -> None:
        """Ask the graph to stop gracefully: sources stop, packets in flight drain, outputs finalize."""
        self._node.runner.request_stop()

    @property
    def stopping(self) -> bool:
        """True once the graph is stopping; long-running sources should return Stop soon."""
        return self._node.runner.stopping


def calculator(func: Callable | None = None, *, name: str | None = None,
               outputs: Mapping[str, Any] | None = None, replace: bool = False, register: bool = True):
    """Turn a plain function into a stateless calculator.

    Positional parameters become input ports (tag = name upper-cased, type = annotation; a default of
    None makes the port optional). Keyword-only parameters become options. The return value is sent on
    ``OUT`` (typed by the return annotation); with ``outputs={"A": int, "B": str}`` return a tuple.
    Returning None sends nothing.

        @calculator
        def scale(IN: float, *, factor: float = 2.0) -> float:
            return IN * factor
    """

    def build(fn: Callable) -> type[Calculator]:
        sig = inspect.signature(fn)
        hints = _annotations(fn)
        attrs: dict[str, Any] = {}
        in_tags: list[tuple[str, str]] = []
        option_fields = []
        for param in sig.parameters.values():
            tp = hints.get(param.name, Any)
            if param.kind is inspect.Parameter.KEYWORD_ONLY:
                if param.default is inspect.Parameter.empty:
                    option_fields.append((param.name, tp))
                else:
                    option_fields.append((param.name, tp, dataclasses.field(default=param.default)))
            else:
                port = Input(param.name.upper(), tp)
                if param.default is None:
                    port = port.optional()
                attrs[param.name.upper()] = port
                in_tags.append((param.name, port.tag))
        out_spec = dict(outputs) if outputs else {"OUT": hints.get("return", Any)}
        out_tags = list(out_spec)
        for tag, tp in out_spec.items():
            attrs[tag] = Output(tag, tp)
        calc_name = name or _camel(fn.__name__)
        options_cls = dataclasses.make_dataclass(f"{calc_name}Options", option_fields, frozen=True)
        multi = outputs is not None

        def process(self, ctx):
            kwargs = {pname: ctx.get(tag) for pname, tag in in_tags}
            result = fn(**kwargs, **dataclasses.asdict(self.options))
            if result is None:
                return None
            if isinstance(result, Stop) or result is Stop:
                return result
            values = result if multi else (result,)
            for tag, value in zip(out_tags, values):
                if value is not None:
                    ctx.send(tag, value)
            return None

        attrs.update(Options=options_cls, process=process, __doc__=fn.__doc__, __module__=fn.__module__,
                     __wrapped__=fn)
        cls = type(calc_name, (Calculator,), attrs)
        if register:
            from .registry import register_calculator
            register_calculator(cls, name=calc_name, replace=replace)
        return cls

    return build(func) if func is not None else build


def _annotations(fn: Callable) -> dict[str, Any]:
    try:
        import typing
        return typing.get_type_hints(fn)
    except Exception:  # unresolved forward refs: fall back to untyped ports
        return {}


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_")) + "Calculator"
