"""A node as the scheduler sees it: the calculator instance, its queues, its streams and its counters."""
from __future__ import annotations

from array import array
from typing import Any

from .calculator import CalculatorContext
from .packet import DONE
from .streams import InputQueue, Stream
from .validate import ResolvedNode

# What a worker does with a node it picked up.
PROCESS, SOURCE, CLOSE = "process", "source", "close"


class NodeStats:
    __slots__ = ("packets_in", "packets_out", "latencies", "errors", "first_start", "last_end")

    def __init__(self):
        self.packets_in = 0
        self.packets_out = 0
        self.latencies = array("d")  # seconds per process() call
        self.errors = 0
        self.first_start = 0.0
        self.last_end = 0.0


class NodeRuntime:
    def __init__(self, resolved: ResolvedNode, runner, side_inputs: dict[str, Any]):
        config = resolved.config
        self.name = config.name
        self.calculator_name = config.calculator
        self.config = config
        self.runner = runner
        self.cls = resolved.cls
        self.on_error = config.on_error
        self.policy = resolved.input_policy
        self.propagate_bounds = bool(getattr(resolved.cls, "propagate_bounds", True))
        self.calc = resolved.cls(resolved.options)
        self.ctx = CalculatorContext(self, resolved.options, side_inputs)
        self.inputs: list[InputQueue] = []
        self.sync_inputs: list[InputQueue] = []  # inputs that take part in timestamp settling
        self.back_inputs: list[InputQueue] = []
        self.multiple: dict[str, int] = {}  # tag -> number of streams, for .multiple() input ports
        in_ports = resolved.cls.input_ports()
        for tag, index, stream, back_edge, queue in resolved.inputs:
            q = InputQueue(self, tag, index, stream, back_edge, queue.size, queue.overflow)
            self.inputs.append(q)
            (self.back_inputs if back_edge else self.sync_inputs).append(q)
            if in_ports[tag].is_multiple:
                self.multiple[tag] = max(self.multiple.get(tag, 0), index + 1)
        self.outputs: dict[str, list[Stream]] = {}
        self.streams: list[Stream] = []
        self.blocking_consumers: list[InputQueue] = []  # filled once streams are wired
        self.is_source = not self.sync_inputs and not self.back_inputs
        # The common case (one input, no back edge) gets a fast path through readiness and popping.
        self.single = self.sync_inputs[0] if len(self.sync_inputs) == 1 and not self.back_inputs else None
        self.producers: list[NodeRuntime] = []  # filled once streams are wired
        self.fed_by_graph_input = False
        self.executor = None
        # scheduling state, guarded by the runner's lock
        self.opened = False
        self.closed = False  # close() has run (or was attempted)
        self.finished = False  # outputs closed; nothing more will happen
        self.stop_requested = False  # process returned Stop
        self.running = False
        self.scheduled = False
        self.throttled = False
        self.stats = NodeStats()

    def wire_output(self, tag: str, index: int, stream: Stream) -> None:
        slots = self.outputs.setdefault(tag, [])
        while len(slots) <= index:
            slots.append(None)
        slots[index] = stream
        self.streams.append(stream)

    def is_throttled(self) -> bool:
        for q in self.blocking_consumers:
            if len(q.items) >= q.maxsize and not q.discarding:
                return True
        return False

    def next_work(self, stopping: bool) -> str | None:
        """What this node can do now, without changing anything: PROCESS, SOURCE, CLOSE or None."""
        if self.finished or self.closed:
            return None
        single = self.single
        if single is not None and not self.stop_requested:
            if single.items:
                return PROCESS
            return CLOSE if single.bound >= DONE else None
        if self.is_source:
            return CLOSE if (stopping or self.stop_requested) else SOURCE
        if self.stop_requested:
            return CLOSE
        for q in self.back_inputs:
            if q.items:
                return PROCESS
        if self.policy == "immediate":
            if any(q.items for q in self.sync_inputs):
                return PROCESS
        elif self._settled_timestamp() is not None:
            return PROCESS
        if all(q.bound >= DONE and not q.items for q in self.sync_inputs):
            return CLOSE
        return None

    def _settled_timestamp(self) -> int | None:
        inputs = self.sync_inputs
        if not inputs:
            return None
        ts = min(q.next_timestamp() for q in inputs)
        if ts >= DONE:
            return None
        has_packet = False
        for q in inputs:
            if q.items:
                if q.items[0].timestamp == ts:
                    has_packet = True
            elif q.bound <= ts:
                return None  # this input may still deliver a packet at ts
        return ts if has_packet else None

    def pop_input_set(self) -> tuple[int, dict[str, Any]] | None:
        """Take the next input set off the queues (under the lock)."""
        single = self.single
        if single is not None and not self.multiple:
            if not single.items:
                return None
            packet = single.items.popleft()
            self.stats.packets_in += 1
            return packet.timestamp, {single.tag: packet.payload}
        for q in self.back_inputs:
            if q.items:
                packet = q.items.popleft()
                return packet.timestamp, self._as_inputs([(q, packet.payload)])
        if self.policy == "immediate":
            best = None
            for q in self.sync_inputs:
                if q.items and (best is None or q.items[0].timestamp < best.items[0].timestamp):
                    best = q
            if best is None:
                return None
            packet = best.items.popleft()
            return packet.timestamp, self._as_inputs([(best, packet.payload)])
        ts = self._settled_timestamp()
        if ts is None:
            return None
        taken = []
        for q in self.sync_inputs:
            if q.items and q.items[0].timestamp == ts:
                taken.append((q, q.items.popleft().payload))
        return ts, self._as_inputs(taken)

    def _as_inputs(self, taken: list[tuple[InputQueue, Any]]) -> dict[str, Any]:
        values: dict[str, Any] = {tag: [None] * n for tag, n in self.multiple.items()} if self.multiple else {}
        for q, payload in taken:
            if q.tag in self.multiple:
                values[q.tag][q.index] = payload
            else:
                values[q.tag] = payload
        self.stats.packets_in += len(taken)
        return values

    def idle_bound(self) -> int:
        """The earliest timestamp this node could still be asked to process, given its inputs."""
        single = self.single
        if single is not None:
            return single.items[0].timestamp if single.items else single.bound
        if not self.sync_inputs:
            return 0
        return min(q.next_timestamp() for q in self.sync_inputs)
