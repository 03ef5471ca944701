"""The scheduler: nodes on executor threads, bounded queues, bound propagation, errors and shutdown.

One lock guards all scheduling state; calculators run outside it. A node is queued on its executor only
when it has work and none of its lossless downstream queues is full, so a full queue throttles its
producer (sources included) without ever blocking a pool thread. A worker that picks up a cheap node with
several packets queued calls it on them in a row (a batch, sized to the room downstream and to a time
budget) and delivers the results together: one lock round trip and one wake-up of the consumer per batch
instead of per packet. A node with `max_in_flight: N` instead runs up to N single calls at once on its
executor's threads, its results held and delivered in the order the calls were taken (`_run_parallel`).
"""
from __future__ import annotations

import logging
import threading
import time
from types import MappingProxyType
from typing import Any, Callable, Mapping

from .errors import GraphDeadlockError, PipelineError
from .executor import DEFAULT_EXECUTOR, Executor
from .node import CLOSE, FAILED, PROCESS, SOURCE, NodeRuntime, wrap_error
from .packet import DONE, Packet, is_stop, new_packet
from .streams import Stream
from .validate import GraphPlan

log = logging.getLogger("framegraph.runner")


class GraphRunner:
    def __init__(self, plan: GraphPlan, side_inputs: dict[str, Any] | None = None, trace: list | None = None):
        self.plan = plan
        self.lock = threading.Lock()
        self.space = threading.Condition(self.lock)  # graph-input senders wait here for queue space
        self.space_waiters = 0  # senders asleep on `space`: nobody to notify when it is 0
        self.done_event = threading.Event()
        self.trace = trace
        self.error: BaseException | None = None
        self.problems: list[str] = []  # reported by calculators; the run went on
        self.stopping = False
        self.cancelled = False
        self.terminate = False
        self.started_at = 0.0
        self.finished_at = 0.0
        sides = dict(plan.config.side_inputs)
        sides.update(side_inputs or {})
        self.side_inputs = sides
        # Process executors' worker processes (process_executor.py): their nodes' calculators run there, and
        # the scheduler calls a stand-in in their place.
        self.pools: dict[str, Any] = {}
        for name, ex in plan.config.executors.items():
            if ex.processes and any(rn.config.executor == name for rn in plan.nodes):
                from .process_executor import ProcessPool

                self.pools[name] = ProcessPool(name, ex.processes)
        self.nodes = [NodeRuntime(rn, self, sides, self.pools[rn.config.executor].place(rn, self, sides)
                                  if rn.config.executor in self.pools else None) for rn in plan.nodes]
        self.streams: dict[str, Stream] = {}
        self.graph_inputs: dict[str, Stream] = {}
        for name in plan.config.inputs:
            self.graph_inputs[name] = self.streams[name] = Stream(name, "<graph input>")
        for node in self.nodes:
            for tag, index, stream in next(rn for rn in plan.nodes if rn.name == node.name).outputs:
                s = self.streams[stream] = Stream(stream, node.name)
                node.wire_output(tag, index, s)
        self.producer_node: dict[str, NodeRuntime] = {s: n for n in self.nodes for s in (x.name for x in n.streams)}
        for node in self.nodes:
            for q in node.inputs:
                self.streams[q.stream].consumers.append(q)
                self.streams[q.stream].content_readers += not q.timing_only
        for node in self.nodes:
            node.blocking_consumers = [q for s in node.streams for q in s.consumers if q.throttles]
            node.producers = list({id(p): p for q in node.inputs
                                   if (p := self.producer_node.get(q.stream)) is not None}.values())
            node.fed_by_graph_input = any(q.stream in self.graph_inputs for q in node.inputs)
        self.unfinished = len(self.nodes)
        self.busy = 0  # nodes scheduled or running: when it drops to 0, look for the end or a deadlock
        self.executors: dict[str, Executor] = {}
        for name, ex in plan.config.executors.items():
            self.executors[name] = Executor(name, ex.threads)
        # Nodes that name no executor run on the graph's "default" executor when it declares one (MediaPipe's
        # num_threads: fewer threads, no handoffs between them; what a batch of files at once wants), else each
        # on a thread of its own.
        default = DEFAULT_EXECUTOR if DEFAULT_EXECUTOR in self.executors else None
        for node in self.nodes:
            name = node.config.executor
            if name is None and default and node.max_in_flight <= self.executors[default].threads:
                name = default
            if name is None:
                name = f"node:{node.name}"
                self.executors[name] = Executor(name, node.max_in_flight)
            node.executor = self.executors[name]
        for pool in self.pools.values():
            pool.start()  # the workers boot while the other nodes open

    # ------------------------------------------------------------ lifecycle

    def open(self) -> None:
        """Open every calculator in graph order; on failure close the ones already open and raise."""
        for node in self.nodes:
            node.ctx.begin(None, _NO_INPUTS)
            try:
                node.calc.open(node.ctx)
            except Exception as exc:
                self._close_all_after_error()
                self._shutdown_pools()
                raise wrap_error(node, "open", None, exc) from exc
            node.opened = True

    def start(self) -> None:
        self.started_at = time.perf_counter()
        for ex in self.executors.values():
            if not any(n.executor is ex for n in self.nodes):
                continue
            for i in range(ex.threads):
                t = threading.Thread(target=self._worker, args=(ex,), daemon=True,
                                     name=f"framegraph-{ex.name}" + (f"-{i}" if ex.threads > 1 else ""))
                ex.workers.append(t)
                t.start()
        with self.lock:
            for node in self.nodes:
                self._maybe_schedule(node)
            self._check_finished()

    def request_stop(self) -> None:
        """Graceful stop: sources close, graph inputs close, packets in flight drain."""
        with self.lock:
            if self.stopping:
                return
            self.stopping = True
            for stream in self.graph_inputs.values():
                stream.raise_bound(DONE)
                self._schedule_consumers(stream)
            for node in self.nodes:
                self._maybe_schedule(node)
            self.space.notify_all()
            self._check_finished()

    def report_problem(self, message: str) -> None:
        log.warning("%s", message)
        with self.lock:
            self.problems.append(message)

    def cancel(self, error: BaseException | None = None) -> None:
        """Stop at once: no further process() calls; close() comes from wait()."""
        with self.lock:
            self._fail_locked(error)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the graph to finish; closes calculators after an error and re-raises it."""
        finished = self.done_event.wait(timeout)
        if not finished:
            return False
        self._shutdown_workers()
        if self.cancelled:
            self._close_all_after_error()
        self._shutdown_pools()
        if self.error is not None:
            raise self.error
        return True

    # ------------------------------------------------------------ graph inputs

    def send_input(self, name: str, payload: Any, timestamp: int) -> None:
        stream = self.graph_inputs[name]
        with self.lock:
            while True:
                if self.error is not None or self.cancelled:
                    raise PipelineError(f"graph input '{name}': the graph has stopped") from self.error
                if stream.bound >= DONE:
                    raise PipelineError(f"graph input '{name}' is closed")
                for q in stream.consumers:  # any lossless queue full? (not any(...): this runs for every packet)
                    if q.throttles and len(q.items) + q.held >= q.maxsize and not q.discarding:
                        break
                else:
                    break
                self.space_waiters += 1
                try:
                    self.space.wait(0.5)
                finally:
                    self.space_waiters -= 1
            stream.emit(new_packet((timestamp, payload)))
            self._schedule_consumers(stream)

    def close_input(self, name: str) -> None:
        with self.lock:
            stream = self.graph_inputs[name]
            stream.raise_bound(DONE)
            self._schedule_consumers(stream)
            self._check_finished()

    def observe(self, stream: str, callback: Callable[[Packet | None], Any], content: bool = True) -> None:
        """Call `callback(packet)` for every packet on `stream` (under the scheduler lock: keep it quick), None at
        close. content=False: it reads only timestamps and metadata, so the producer may skip its content work."""
        s = self.streams[stream]
        s.observers.append(callback)
        s.content_readers += bool(content)

    # ------------------------------------------------------------ the worker

    def _worker(self, ex: Executor) -> None:
        lock = self.lock
        wake = threading.Lock()
        wake.acquire()
        lock.acquire()
        try:
            while True:
                while not ex.ready and not self.terminate:
                    ex.sleep(lock, wake)
                if self.terminate:
                    return
                node = ex.ready.popleft()
                node.scheduled = False
                try:
                    if not self.cancelled:
                        self._run_once(node)
                except BaseException as exc:  # a bug of ours or a calculator's: never lose it
                    self._fail_locked(exc)
                self.busy -= 1
                if self.busy == 0:
                    self._check_finished()
        finally:
            lock.release()

    def _run_once(self, node: NodeRuntime) -> None:
        """Called and returns with the lock held; releases it around the calculator calls."""
        kind = node.next_work(self.stopping)
        if kind is None:
            return
        if node.parallel:
            if kind != CLOSE:
                return self._run_parallel(node, kind)
            if node.running:
                return  # close() waits for the calls in flight; the last one's delivery schedules it
        if kind != CLOSE and node.is_throttled():
            node.throttled = True
            return
        if kind == PROCESS:
            batch = node.take_batch()
            if not batch:
                return
            self._wake_producers(node)
        else:
            batch = _NO_BATCH
        calls: list[tuple[int | None, list, Any]] = []  # (timestamp, outbox, result) of each call made
        node.running = True
        self.lock.release()
        try:
            failure = node.call(kind, batch, calls)
        finally:
            self.lock.acquire()
            node.running = False
            if kind == PROCESS and node.end_batch(batch, len(calls)):
                self._wake_producers(node)  # the room held for the batch is free now
        if calls:
            self._deliver(node, kind, calls)
        if failure is not None:
            self._fail_locked(failure)

    def _run_parallel(self, node: NodeRuntime, kind: str) -> None:
        """`_run_once` for a node with max_in_flight > 1: one input set per call, up to that many at once, each
        scheduling the next. Results are delivered in the order the calls were taken: one that finishes early
        waits; a failed one fails the graph in its turn, and no call starts after it."""
        if not node.may_start_call():
            node.throttled = not node.halted
            return
        batch = node.take_batch()
        if not batch:
            return
        self._wake_producers(node)
        seq, ctx = node.start_call(batch)
        self._maybe_schedule(node)  # another worker may start the next call
        calls: list[tuple[int | None, list, Any]] = []
        failure = None
        self.lock.release()
        try:
            failure = node.call(kind, batch, calls, ctx)
        finally:
            self.lock.acquire()
            node.end_call(seq, ctx, calls, failure)
            while (entry := node.next_delivery()) is not None:
                calls, failure = entry
                if self.cancelled:
                    continue
                if calls and not node.stop_requested:  # after a Stop, what later calls sent is dropped
                    try:
                        self._deliver(node, kind, calls)
                    except Exception as exc:  # e.g. a send() to an unknown port: the rest must still drain
                        failure = failure or exc
                if failure is not None:
                    self._fail_locked(failure)
            self._maybe_schedule(node)

    def _deliver(self, node: NodeRuntime, kind: str, calls: list) -> None:
        """Under the lock: emit what the calls sent, in order, then move bounds and schedule whoever can run."""
        touched: list[Stream] = []  # streams that got packets: their consumers may now run
        moved: list[Stream] = []  # streams whose bound alone moved: consumers may propagate it further
        max_sent = -1
        sent = 0
        node_outputs = node.outputs
        method = "close" if kind == CLOSE else "process"  # for errors
        for ts, outbox, result in calls:
            if result is FAILED:
                break
            for tag, index, out_ts, value in outbox:
                slots = node_outputs.get(tag)
                if slots is None:
                    if tag not in node.output_tags:
                        raise wrap_error(node, method, ts, KeyError(
                            f"send() on unknown output port '{tag}'; valid: {', '.join(node.cls.output_ports())}"))
                    continue  # port declared but not connected in this graph
                if index == -1:  # set_next_timestamp_bound
                    try:
                        for stream in slots:
                            if stream is not None and stream.promise(out_ts):
                                moved.append(stream)
                    except PipelineError as exc:
                        raise wrap_error(node, method, ts, exc) from exc
                    continue
                try:
                    stream = slots[index]
                except IndexError:
                    continue  # a .multiple() output with fewer streams connected than the index sent to
                if stream is None:
                    continue
                try:
                    stream.emit(new_packet((out_ts, value)))
                except PipelineError as exc:
                    raise wrap_error(node, method, ts, exc) from exc
                if out_ts > max_sent:
                    max_sent = out_ts
                sent += 1
                if not touched or touched[-1] is not stream:  # a batch sends to the same streams over and over
                    touched.append(stream)
        node.stats.packets_out += sent
        # Bounds and the end of the node follow from the last call: the earlier ones of a batch returned None,
        # and the packets and bounds of the last one supersede theirs.
        ts, _, result = calls[-1]
        if result is FAILED:
            return  # the graph fails next: what came before is delivered, nothing more is scheduled
        if kind == PROCESS and result is None:
            if node.propagate_bounds:
                # Past this timestamp, and up to the next one the inputs could still deliver.
                # Sync inputs are settled past ts, so `idle` > ts there; an immediate node may still get an
                # earlier timestamp on another input, so its bound is what its inputs can still deliver.
                idle = node.idle_bound()
                if idle >= DONE:
                    bound = ts + 1  # closing is close()'s job
                elif node.policy == "immediate":
                    bound = idle
                else:
                    bound = max(idle, ts + 1)
                for stream in node.streams:
                    if stream.bound < bound:
                        stream.raise_bound(bound)
                        moved.append(stream)
        elif kind == CLOSE:
            node.finished = True
            self.unfinished -= 1
            for stream in node.streams:
                stream.raise_bound(DONE)
                moved.append(stream)
            for q in node.inputs:  # nothing will read these any more: never hold a producer back
                q.discarding = True
                q.items.clear()
            self._wake_producers(node)
        elif is_stop(result):
            node.stop_requested = True
            if len(calls) > 1 and node.propagate_bounds:
                # The call before it returned None, and would have moved the bounds up to this input's timestamp.
                for stream in node.streams:
                    if stream.raise_bound(ts):
                        moved.append(stream)
        elif kind == SOURCE:
            if max_sent >= 0:
                for stream in node.streams:
                    if stream.raise_bound(max_sent + 1):
                        moved.append(stream)
        elif node.propagate_bounds and ts is not None:
            for stream in node.streams:
                if stream.raise_bound(ts + 1):
                    moved.append(stream)
            self._propagate_idle_bound(node, moved)
        schedule = self._maybe_schedule
        for stream in touched:
            for q in stream.consumers:
                schedule(q.node)
        for stream in moved:
            self._schedule_consumers(stream)
        schedule(node)

    # ------------------------------------------------------------ scheduling (lock held)

    def _propagate_idle_bound(self, node: NodeRuntime, touched: list[Stream]) -> None:
        if node.running or node.is_source or not node.sync_inputs:
            return
        bound = node.idle_bound()
        if bound >= DONE:
            return  # closing is close()'s job, after the calculator had its say
        for stream in node.streams:
            if stream.raise_bound(bound):
                touched.append(stream)

    def _schedule_consumers(self, stream: Stream) -> None:
        for q in stream.consumers:
            consumer = q.node
            if consumer.propagate_bounds and not consumer.running and not consumer.finished:
                moved: list[Stream] = []
                self._propagate_idle_bound(consumer, moved)
                if moved:  # rarely: a packet usually arrives at the bound its producer already promised
                    for s in dict.fromkeys(moved):
                        self._schedule_consumers(s)
            self._maybe_schedule(consumer)

    def _maybe_schedule(self, node: NodeRuntime) -> None:
        if node.scheduled or node.finished or self.cancelled:
            return
        if node.running and (not node.parallel or node.in_flight >= node.max_in_flight):
            return
        kind = node.next_work(self.stopping)
        if kind is None:
            return
        if kind != CLOSE:
            for q in node.blocking_consumers:  # node.is_throttled(), inlined: this runs for every packet
                if len(q.items) + q.held >= q.maxsize and not q.discarding:
                    node.throttled = True
                    return
        node.throttled = False
        node.scheduled = True
        self.busy += 1
        ex = node.executor
        ex.ready.append(node)
        if ex.sleeping:
            ex.sleeping.pop().release()  # wake one

    def _wake_producers(self, node: NodeRuntime) -> None:
        for producer in node.producers:
            if producer.throttled:
                self._maybe_schedule(producer)
        if node.fed_by_graph_input and self.space_waiters:
            self.space.notify_all()

    def _check_finished(self) -> None:
        if self.done_event.is_set():
            return
        if self.unfinished == 0:
            self.finished_at = time.perf_counter()
            self.done_event.set()
            return
        if self.busy or any(n.running or n.scheduled for n in self.nodes):
            return
        if any(s.bound < DONE for s in self.graph_inputs.values()):
            return  # the caller may still send
        stuck = [n for n in self.nodes if not n.finished]
        full = [f"{q.node.name}.{q.tag} ('{q.stream}', {len(q.items)}/{q.maxsize})"
                for n in self.nodes for q in n.inputs if q.throttles and q.full]
        waiting = ", ".join(n.name for n in stuck[:5])
        self._fail_locked(GraphDeadlockError(
            f"graph deadlocked: nothing can run and nodes {waiting} are not finished; full queues: "
            f"{', '.join(full) or 'none'}. Hint: raise the queue size of a join input or give it "
            "overflow: drop_oldest"))

    def _fail_locked(self, error: BaseException | None) -> None:
        if error is not None and self.error is None:
            self.error = error
        if self.cancelled:
            return
        self.cancelled = True
        self.finished_at = time.perf_counter()
        self.space.notify_all()
        self.done_event.set()

    def _shutdown_workers(self) -> None:
        with self.lock:
            self.terminate = True
            for ex in self.executors.values():
                ex.wake_all()
        me = threading.current_thread()
        for ex in self.executors.values():
            for t in ex.workers:
                if t is not me:
                    t.join(timeout=5.0)

    def _shutdown_pools(self) -> None:
        for pool in self.pools.values():
            pool.shutdown()

    def _close_all_after_error(self) -> None:
        """After an error: close() every opened calculator not yet closed, once no process() is running."""
        deadline = time.monotonic() + 10.0
        while any(n.running for n in self.nodes) and time.monotonic() < deadline:
            time.sleep(0.01)
        for node in self.nodes:
            if not node.opened or node.closed:
                continue
            if node.running:
                log.error('node "%s" is still inside process(); not closing it', node.name)
                continue
            node.closed = True
            node.ctx.begin(None, _NO_INPUTS)  # what close() sends now is not delivered: the graph has failed
            try:
                node.calc.close(node.ctx)
            except Exception as exc:  # the first error is the one to report; log the rest
                log.error('node "%s" (%s) also failed in close(): %s', node.name, node.calculator_name, exc)


_NO_INPUTS: Mapping[str, Any] = MappingProxyType({})
_NO_BATCH = [(None, _NO_INPUTS)]  # what a source's or a close() call is given
