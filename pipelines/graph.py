"""The Python entry point: ``Graph`` (validated at construction) and the running ``GraphHandle``."""
from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from .config import GraphConfig, load_graph, parse_graph
from .errors import PipelineError
from .packet import Packet
from .runner import GraphRunner
from .stats import GraphStats, collect_stats
from .validate import GraphPlan, validate

log = logging.getLogger("framegraph.graph")

_END = object()


class Graph:
    """A validated graph, ready to run any number of times.

        graph = Graph.from_yaml("graphs/face_detect.yaml", overrides=["source.source=clip.mp4"])
        results = Graph.from_string(text).run(inputs={"in": [1, 2, 3]}, outputs=["out"])
    """

    def __init__(self, config: GraphConfig | str | Path, overrides: list | None = None):
        if isinstance(config, (str, Path)):
            config = load_graph(config, overrides)
        self.config: GraphConfig = config
        self.plan: GraphPlan = validate(config)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list | None = None) -> "Graph":
        return cls(load_graph(path, overrides))

    @classmethod
    def from_string(cls, text: str, filename: str = "<graph>", base_dir: str | Path = ".",
                    overrides: list | None = None) -> "Graph":
        return cls(parse_graph(text, filename, base_dir, overrides))

    def start(self, outputs: Iterable[str] = (), side_inputs: Mapping[str, Any] | None = None,
              trace: bool = False) -> "GraphHandle":
        """Open every calculator and start the threads. Observe `outputs` with ``handle.outputs(name)``."""
        return GraphHandle(self, list(outputs), dict(side_inputs or {}), trace)

    def run(self, inputs: Mapping[str, Iterable[Any]] | None = None, outputs: Iterable[str] = (),
            side_inputs: Mapping[str, Any] | None = None, timeout: float | None = None) -> dict[str, list[Packet]]:
        """Feed each input from an iterable (payloads get timestamps 0, 1, 2, ...; `Packet`s keep theirs), run to
        completion and return every packet of every named output."""
        names = list(outputs)
        collected: dict[str, list[Packet]] = {name: [] for name in names}
        handle = GraphHandle(self, [], dict(side_inputs or {}), False, collect=collected)
        inputs = dict(inputs or {})
        for name in self.config.inputs:
            if name not in inputs:
                inputs[name] = ()
        feeders = [threading.Thread(target=handle._feed, args=(name, items), daemon=True,
                                    name=f"framegraph-feed-{name}") for name, items in inputs.items()]
        for t in feeders:
            t.start()
        try:
            if not handle.wait(timeout):
                handle.cancel()
                handle.wait(10)
                raise TimeoutError(f"graph did not finish within {timeout} s")
        finally:
            for t in feeders:
                t.join(timeout=1.0)
            self.last_stats = handle.stats
            self.last_problems = handle.problems
        return collected


class GraphHandle:
    """A running graph: send packets, close inputs, iterate or observe outputs, stop, wait; then its stats and
    the problems its nodes reported."""

    def __init__(self, graph: Graph, outputs: list[str], side_inputs: dict[str, Any], trace: bool,
                 collect: dict[str, list[Packet]] | None = None):
        self.graph = graph
        self.trace_events: list | None = [] if trace else None
        self._runner = runner = GraphRunner(graph.plan, side_inputs, self.trace_events)
        self._queues: dict[str, queue.Queue] = {}
        self._next_ts: dict[str, int] = {}
        self._feed_error: BaseException | None = None
        unknown = [o for o in list(outputs) + list(collect or {}) if o not in runner.streams]
        if unknown:
            raise PipelineError(f"no stream named {', '.join(map(repr, unknown))} in the graph; "
                                f"streams: {', '.join(self._runner.streams)}")
        for name in outputs:
            q = self._queues[name] = queue.Queue()
            self._runner.observe(name, lambda p, q=q: q.put(_END if p is None else p))
        for name, sink in (collect or {}).items():
            self._runner.observe(name, lambda p, sink=sink: p is not None and sink.append(p))
        self._runner.open()
        _freeze_heap()
        self._runner.start()

    # inputs
    def send(self, name: str, payload: Any, timestamp: int | None = None) -> None:
        """Send `payload` on graph input `name`; blocks while a lossless queue it feeds is full."""
        if name not in self._runner.graph_inputs:
            raise PipelineError(f"'{name}' is not a graph input; inputs: {', '.join(self._runner.graph_inputs) or '(none)'}")
        if isinstance(payload, Packet) and timestamp is None:
            payload, timestamp = payload.payload, payload.timestamp
        if timestamp is None:
            timestamp = self._next_ts.get(name, 0)
        self._next_ts[name] = timestamp + 1
        self._runner.send_input(name, payload, timestamp)

    def close_input(self, name: str) -> None:
        self._runner.close_input(name)

    def close_inputs(self) -> None:
        for name in self._runner.graph_inputs:
            self._runner.close_input(name)

    def _feed(self, name: str, items: Iterable[Any]) -> None:
        try:
            for item in items:
                self.send(name, item)
        except BaseException as exc:
            if self._runner.cancelled:
                return  # the graph stopped first; its own error is what the caller sees
            if not isinstance(exc, PipelineError):
                wrapped = PipelineError(f"graph input '{name}': the input iterable raised {type(exc).__name__}: {exc}")
                wrapped.__cause__ = exc
                exc = wrapped
            self._runner.cancel(exc)
            return
        try:
            self.close_input(name)
        except PipelineError:
            pass

    # outputs
    def outputs(self, name: str, timeout: float | None = None) -> Iterator[Packet]:
        """Iterate the packets of an output named at start(), until the stream closes or the graph fails."""
        q = self._queues[name]
        while True:
            try:
                item = q.get(timeout=0.1 if timeout is None else timeout)
            except queue.Empty:
                if self._runner.done_event.is_set() and q.empty():
                    if self._runner.error is not None:
                        self.wait()
                    return
                if timeout is not None:
                    raise TimeoutError(f"no packet on '{name}' within {timeout} s") from None
                continue
            if item is _END:
                return
            yield item

    def observe(self, stream: str, callback, content: bool = True) -> None:
        """Call `callback(packet)` for every packet on `stream`, and `callback(None)` when it closes. Runs on the
        scheduler's thread under its lock: keep it quick (count, copy a reference), never block. content=False
        promises it reads only timestamps and metadata (a progress count): a producer nobody else reads may then
        skip the work on the content (the overlay sends its frames undrawn; see CalculatorContext.wanted)."""
        if stream not in self._runner.streams:
            raise PipelineError(f"no stream named '{stream}' in the graph; streams: {', '.join(self._runner.streams)}")
        self._runner.observe(stream, callback, content)

    @property
    def streams(self) -> list[str]:
        """The names of every stream of the running graph."""
        return list(self._runner.streams)

    @property
    def problems(self) -> list[str]:
        """Problems nodes reported without stopping the graph (a truncated input), in order."""
        return list(self._runner.problems)

    @property
    def started_at(self) -> float:
        """`time.perf_counter()` when the graph started (trace timestamps are relative to it)."""
        return self._runner.started_at

    # control
    def stop(self) -> None:
        self._runner.request_stop()

    def cancel(self) -> None:
        self._runner.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the graph finishes; raises the first error (a CalculatorError naming node and timestamp)."""
        return self._runner.wait(timeout)

    @property
    def stats(self) -> GraphStats:
        return collect_stats(self._runner)

    @property
    def done(self) -> bool:
        return self._runner.done_event.is_set()

    def __enter__(self) -> "GraphHandle":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.cancel()
            try:
                self.wait(10)
            except Exception:  # the exception already propagating is the one that matters
                pass
        else:
            self.close_inputs()
            self.wait()


_heap_frozen = False


def _freeze_heap() -> None:
    """Move every object alive when the first graph has opened (modules, models, options: long-lived state) out of
    the garbage collector's sight, once per process. Without it the full collections that allocation triggers
    every second or so scan that whole heap while holding the GIL: 25-40 ms pauses every 33 frames in the face
    mesh graph's live mode (its live p99 went from 45-53 ms to 10-22 ms with this). Once only: frozen objects are
    never collected as cycles, and a later graph's start could freeze the garbage of graphs that ended."""
    global _heap_frozen
    if not _heap_frozen:
        import gc

        gc.freeze()
        _heap_frozen = True
