"""A node as the scheduler sees it: the calculator instance, its queues, its streams and its counters."""
from __future__ import annotations

import logging
import threading
import time
from array import array
from collections import deque
from typing import Any

from .calculator import CalculatorContext
from .errors import CalculatorError
from .packet import DONE, Stop
from .stats import LatencyWindow
from .streams import InputQueue, Stream
from .validate import ResolvedNode

# What a worker does with a node it picked up.
PROCESS, SOURCE, CLOSE = "process", "source", "close"
#: The result of a call that raised.
FAILED = object()

#: A worker may call a node on several queued input sets in a row (`take_batch`): one lock round trip instead
#: of one per packet, which is most of the cost of a cheap node. A batch ends once it has run this long, and
#: the next one is sized to fit, so a slow calculator hands on each result as soon as it has it.
BATCH_SECONDS = 0.0002

_UNLIMITED = 1 << 62

log = logging.getLogger("framegraph.runner")  # the scheduler's logger, where these warnings always went


def wrap_error(node: "NodeRuntime", method: str, ts: int | None, exc: BaseException) -> BaseException:
    """`exc` as a CalculatorError naming the node, its calculator, the method and the timestamp."""
    if isinstance(exc, CalculatorError):
        return exc
    err = CalculatorError(node.name, node.calculator_name, method, ts, exc)
    err.__cause__ = exc
    return err


class NodeStats:
    __slots__ = ("packets_in", "packets_out", "latencies", "errors", "first_start", "last_end", "status")

    def __init__(self):
        self.packets_in = 0
        self.packets_out = 0
        self.latencies = LatencyWindow()  # seconds per process() call
        self.errors = 0
        self.first_start = 0.0
        self.last_end = 0.0
        self.status = ""  # what the calculator says it is doing (CalculatorContext.set_status)


class NodeRuntime:
    def __init__(self, resolved: ResolvedNode, runner, side_inputs: dict[str, Any], calc: Any = None):
        config = resolved.config
        self.name = config.name
        self.calculator_name = config.calculator
        self.config = config
        self.runner = runner
        self.cls = resolved.cls
        self.on_error = config.on_error
        self.policy = resolved.input_policy
        self.propagate_bounds = bool(getattr(resolved.cls, "propagate_bounds", True))
        # `calc`: what stands in for the calculator when it runs elsewhere (a process executor's RemoteCalculator)
        self.calc = calc if calc is not None else resolved.cls(resolved.options)
        self.ctx = CalculatorContext(self, resolved.options, side_inputs)
        self.inputs: list[InputQueue] = []
        self.sync_inputs: list[InputQueue] = []  # inputs that take part in timestamp settling
        self.back_inputs: list[InputQueue] = []
        self.multiple: dict[str, int] = {}  # tag -> number of streams, for .multiple() input ports
        in_ports = resolved.cls.input_ports()
        for tag, index, stream, back_edge, queue in resolved.inputs:
            q = InputQueue(self, tag, index, stream, back_edge, queue.size, queue.overflow)
            q.timing_only = in_ports[tag].timing_only
            self.inputs.append(q)
            (self.back_inputs if back_edge else self.sync_inputs).append(q)
            if in_ports[tag].is_multiple:
                self.multiple[tag] = max(self.multiple.get(tag, 0), index + 1)
        self.outputs: dict[str, list[Stream]] = {}
        # Every declared output, connected or not: a send to one not connected is dropped, to any other refused.
        self.output_tags = frozenset(resolved.cls.output_ports())
        self.streams: list[Stream] = []
        self.blocking_consumers: list[InputQueue] = []  # filled once streams are wired
        self.is_source = not self.sync_inputs and not self.back_inputs
        # The common case (one input, no back edge) gets a fast path through readiness and popping.
        self.single = self.sync_inputs[0] if len(self.sync_inputs) == 1 and not self.back_inputs else None
        # ... and may take several packets per scheduling round (take_batch) when its queue is lossless: a
        # dropping queue must keep dropping its oldest while a slow call runs, not hand them out in batches.
        self.batches = self.single is not None and not self.multiple and self.single.throttles
        self.room = _UNLIMITED  # packets the running batch may send before its fullest downstream queue is full
        self.batch_limit = 1  # input sets per batch: as many as fit BATCH_SECONDS at the pace of the last one
        self.batch_seconds = 0.0  # how long the last batch took (set by the worker running it)
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
        # Parallel calls (max_in_flight > 1): calls are numbered as they are taken and delivered in that order.
        self.max_in_flight = config.max_in_flight
        self.parallel = self.max_in_flight > 1
        self.in_flight = 0  # calls taken and not yet delivered (running, or done and held for an earlier one)
        if self.parallel:
            self.batches = False  # one input set per call: the calls themselves overlap
            self.in_flight_ts: deque[int] = deque()  # their timestamps, in the order taken
            self.next_seq = self.delivered = 0
            self.done: dict[int, tuple[list, BaseException | None]] = {}  # seq -> (calls, failure), held
            self.halted = False  # a call failed: start no more
            self.contexts = [CalculatorContext(self, resolved.options, side_inputs)
                             for _ in range(self.max_in_flight)]
            self.idle_bound = self._parallel_idle_bound

    def wire_output(self, tag: str, index: int, stream: Stream) -> None:
        slots = self.outputs.setdefault(tag, [])
        while len(slots) <= index:
            slots.append(None)
        slots[index] = stream
        self.streams.append(stream)

    def is_throttled(self) -> bool:
        for q in self.blocking_consumers:
            if len(q.items) + q.held >= q.maxsize and not q.discarding:
                return True
        return False

    def may_start_call(self) -> bool:
        """A parallel node (under the lock): another call may start, its outputs fitting downstream along with
        those of the calls in flight (as if each sent one packet per stream, as is_throttled assumes)."""
        if self.halted or self.in_flight >= self.max_in_flight:
            return False
        for q in self.blocking_consumers:
            if len(q.items) + q.held + self.in_flight >= q.maxsize and not q.discarding:
                return False
        return True

    def start_call(self, batch: list) -> tuple[int, CalculatorContext]:
        """A parallel node (under the lock): number the call on `batch` and lend it a context of its own."""
        seq = self.next_seq
        self.next_seq = seq + 1
        self.in_flight += 1
        self.in_flight_ts.append(batch[0][0])
        self.running = True
        return seq, self.contexts.pop()

    def end_call(self, seq: int, ctx: CalculatorContext, calls: list, failure: BaseException | None) -> None:
        """A parallel node (under the lock): hold the call's results until the earlier calls are delivered."""
        self.contexts.append(ctx)
        self.done[seq] = (calls, failure)
        if failure is not None:
            self.halted = True

    def next_delivery(self) -> tuple[list, BaseException | None] | None:
        """A parallel node (under the lock): the results of the earliest call not yet delivered, if it is done."""
        entry = self.done.pop(self.delivered, None)
        if entry is None:
            return None
        self.delivered += 1
        self.in_flight -= 1
        self.in_flight_ts.popleft()
        self.running = self.in_flight > 0
        return entry

    def _parallel_idle_bound(self) -> int:
        """Calls still in flight may yet send at their own timestamps."""
        bound = NodeRuntime.idle_bound(self)
        return min(bound, min(self.in_flight_ts)) if self.in_flight_ts else bound

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
            awaits = getattr(self.calc, "awaits_back_edges", None)  # a remote stand-in may not have it
            if self.back_inputs and awaits is not None and awaits():
                return None  # a back edge still owes the calculator a packet; its arrival schedules the node
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

    def take_batch(self) -> list[tuple[int, Any]]:
        """Take the next input sets off the queues (under the lock), for `call`: a list of (timestamp, inputs by
        tag), or for a node that `batches`, of its packets themselves, (timestamp, payload).

        A node that batches takes as many as are queued, as its fullest lossless downstream queue has room for,
        and as `batch_limit` says; any other takes one (or none). Calling a cheap calculator on a batch costs one
        lock round trip instead of one per packet. The packets past the first stay counted in the queue (`held`)
        until `end_batch`, so producers are throttled exactly as if they were taken one at a time; those not
        processed go back to the front of the queue."""
        if not self.batches:
            popped = self.pop_input_set()
            return [popped] if popped is not None else []
        single = self.single
        items = single.items
        if not items:
            return []
        room = _UNLIMITED
        for q in self.blocking_consumers:
            if not q.discarding and q.maxsize - len(q.items) - q.held < room:
                room = q.maxsize - len(q.items) - q.held  # > 0: the caller checked the node is not throttled
        self.room = room
        n = min(len(items), room, self.batch_limit)
        if n == len(items):
            batch = list(items)
            items.clear()
        else:
            popleft = items.popleft
            batch = [popleft() for _ in range(n)]
        single.held = n - 1
        self.stats.packets_in += n
        return batch

    def end_batch(self, batch: list, done: int) -> bool:
        """After a batch (under the lock) that called the calculator on its first `done` input sets: size the
        next batch to the pace of this one and put the packets not processed back in front, in order.
        Returns True if the queue has more room than producers were shown during the batch."""
        if not self.batches:
            return False  # one input set at a time: nothing is ever left over
        seconds = self.batch_seconds
        self.batch_limit = max(1, int(BATCH_SECONDS * done / seconds) if seconds > 0 else done)
        single = self.single
        unprocessed = len(batch) - done
        freed = single.held > unprocessed
        single.held = 0
        if unprocessed:
            single.items.extendleft(reversed(batch[done:]))
            self.stats.packets_in -= unprocessed
        return freed

    def call(self, kind: str, batch: list, calls: list, ctx: CalculatorContext | None = None) -> BaseException | None:
        """Outside the lock: call the calculator on each input set of `batch` in turn, appending (timestamp,
        outbox, result) to `calls`; result is FAILED for a call that raised.

        Returns the error (wrapped) that must fail the graph, if any. A batch stops early at a Stop (or any
        other result), an error, a cancel, once it has sent as many packets as the room downstream it was sized
        for (`room`), or after BATCH_SECONDS. A parallel call passes the context lent to it (`start_call`)."""
        if ctx is None:
            ctx = self.ctx
        stats = self.stats
        if kind == CLOSE:
            self.closed = True
            method, fn, latencies = "close", self.calc.close, array("d")  # close() is not a latency
        else:
            method, fn, latencies = "process", self.calc.process, stats.latencies
        runner = self.runner
        trace = runner.trace
        room = self.room
        sent = 0
        # A batching node's batch holds its packets: each call sees its payload in this one dict.
        tag = self.single.tag if self.batches and kind == PROCESS else None
        shared: dict[str, Any] = {}
        perf = time.perf_counter
        first = start = end = perf()
        inputs = shared
        for ts, item in batch:  # item: the inputs by tag, or a batching node's payload
            if tag is None:
                inputs = item
            else:
                shared[tag] = item
            outbox = ctx.begin(ts, inputs)
            try:
                result = fn(ctx)
            except Stop:
                result = Stop
            except Exception as exc:
                if self.on_error != "skip" or kind != PROCESS:
                    calls.append((ts, outbox, FAILED))
                    self.batch_seconds = perf() - first
                    return wrap_error(self, method, ts, exc)
                stats.errors += 1
                log.warning('node "%s" (%s): skipped the packet at %s: %s: %s', self.name, self.calculator_name,
                            ts, type(exc).__name__, exc)
                outbox.clear()
                result = None
            end = perf()
            latencies.append(end - start)
            if trace is not None:
                trace.append((self.name, threading.get_ident(), start, end, ts, method))
            start = end  # the next call's latency counts its share of this loop: one clock read per call
            calls.append((ts, outbox, result))
            if result is not None:
                break
            sent += len(outbox)
            if sent >= room or end - first > BATCH_SECONDS or runner.cancelled:
                break
        self.batch_seconds = end - first
        if kind != CLOSE:
            if not stats.first_start:
                stats.first_start = first
            stats.last_end = end
        return None

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
