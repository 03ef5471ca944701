"""A process executor: ``executors: {heavy: {processes: 2}}`` runs its nodes' calculators in worker processes.

For Python work that holds the GIL (a pure-Python loop, a library that never releases it), threads take turns and
processes run at once. What a user can rely on (the semantics of Ray's actors, on one machine):

- ``processes: P`` starts P worker processes with the 'spawn' start method (a fresh interpreter; forking a
  process that runs threads is unsafe) as the graph is built, so they boot while the other nodes open; they are
  stopped when the graph ends, however it ends. Only workers that host a node are started.
- A node on the executor gets one calculator instance per call it may have in flight, each in a different
  worker: ``max_in_flight: N`` (N <= P, and its class must allow N, as on threads) gives N instances and up to N
  calls at once, outputs still delivered in timestamp order. A node with ``max_in_flight: 1``, which is every
  stateful calculator, lives in one worker, where its one instance sees every packet in order as on a thread.
  Instances go to the workers hosting the fewest; the nodes of one executor share its workers.
- The instance is built in the worker: its class is imported there by module and name, exactly the class the
  parent validated (an entry point's module, a plugin's, or any module of your own on ``sys.path``; not a class
  defined inside a function or typed into ``python -c``), with the node's options, pickled (validation checks they
  can be), and the graph's side inputs, pickled at open. ``open``, ``process`` and ``close`` all run there.
- Inputs and outputs cross through shared memory (`shared_frames`): numpy arrays, bare or inside a `Frame` or any
  other packet, are copied into a block and out of it, never pickled; the rest of a packet is pickled (small).
  Packets arrive as copies: a sentinel that others compare with ``is`` must pickle as itself (``__reduce__``
  returning its global name). ``awaits_back_edges()`` is answered from what the instance said after its last call.
- What the calculator logs on ``ctx.logger`` (a ``framegraph.*`` logger), ``ctx.report_problem``,
  ``ctx.set_status`` and ``ctx.stop_graph`` come back to the parent; ``ctx.stopping`` is the graph's state when the call was sent.
- An exception in the worker fails the graph as on a thread (a CalculatorError naming the node, the method and
  the timestamp) with the original exception, rebuilt in the parent when it pickles, whose ``__cause__`` is the
  worker's traceback (`RemoteTraceback`; also ``exc.remote_traceback``, the text). ``on_error: skip`` works too.
- A worker that dies (killed, out of memory, a crash in a native library) fails the graph at once with one line,
  ``node "n" (Calc) at timestamp T: worker process PID of executor "heavy" died (killed by SIGKILL)``; the other
  nodes are closed and outputs finalized. Workers ignore SIGINT and SIGTERM (the run-graph process decides how
  to stop, and needs them to drain) and exit on their own, unlinking their shared memory, if it dies.
"""
from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import pickle
import queue
import secrets
import signal
import sys
import threading
import time
import weakref
from typing import Any

from .errors import PipelineError
from .process_worker import worker_main
from .shared_frames import SharedReader, SharedWriter, unlink_blocks

log = logging.getLogger("framegraph.runner")

START_TIMEOUT = 60.0  # seconds a worker may take to boot (a cold disk, a loaded machine)
STOP_TIMEOUT = 2.0  # seconds workers get to exit when asked, before they are terminated


class WorkerDiedError(PipelineError, RuntimeError):
    """A worker process of a process executor ended while a node needed it."""


class WorkerError(PipelineError, RuntimeError):
    """An exception raised in a worker that could not be rebuilt in the parent: its type name and message."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, as text: the ``__cause__`` of the rebuilt exception."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n" + self.text


def check_node(cls: type, options: Any) -> list[str]:
    """What stops a node's calculator from running in a worker process, found at validation."""
    faults = []
    defined = getattr(cls, "__wrapped__", cls)  # a @calculator function's class is made from the function
    main = sys.modules.get("__main__")
    if "<locals>" in getattr(defined, "__qualname__", ""):
        faults.append(f"{cls.__name__} is defined inside a function, so a worker process cannot import it; "
                      "define it at the top level of a module")
    elif cls.__module__ == "__main__" and not getattr(main, "__file__", None):
        faults.append(f"{cls.__name__} is defined in an interactive session or 'python -c', so a worker process "
                      "cannot import it; define it in a module")
    try:
        pack_options(options)
    except Exception as exc:
        faults.append(f"its options cannot be sent to a worker process (they must pickle): {type(exc).__name__}: "
                      f"{exc}")
    return faults


def pack_options(options: Any) -> tuple[str, bytes]:
    """A node's options for the worker: pickled whole, or, for an Options class that cannot be found by name (the
    one ``@calculator`` makes for a function), as its field values, which the worker passes to the class it finds."""
    try:
        return "object", pickle.dumps(options)
    except Exception:
        if not dataclasses.is_dataclass(options):
            raise
        return "fields", pickle.dumps({f.name: getattr(options, f.name) for f in dataclasses.fields(options)})


class ProcessPool:
    """The worker processes of one process executor, and the calculator instances placed on them."""

    def __init__(self, name: str, processes: int):
        self.name = name
        self.size = processes
        # Every shared-memory block of this pool is named under the prefix, so the pool can sweep up after a
        # worker that was killed with blocks of its own.
        self.prefix = f"fg{os.getpid()}{secrets.token_hex(3)}_"
        self.load = [0] * processes  # instances placed on each worker
        self._workers: dict[int, _Worker] = {}
        self._lock = threading.Lock()
        self._stop = weakref.finalize(self, _stop_workers, self._workers, self.prefix)

    def place(self, resolved, runner, side_inputs: dict[str, Any]) -> "RemoteCalculator":
        """Put a node's instances on the least loaded workers; returns what the scheduler calls instead."""
        count = min(resolved.config.max_in_flight, self.size)
        hosts = sorted(range(self.size), key=lambda i: (self.load[i], i))[:count]
        for i in hosts:
            self.load[i] += 1
        return RemoteCalculator(self, resolved, runner, side_inputs, hosts)

    def start(self) -> None:
        """Start the workers that host a node, without waiting for them to boot."""
        level = logging.getLogger("framegraph").getEffectiveLevel()
        with self._lock:
            if not self._stop.alive:
                raise PipelineError(f'executor "{self.name}" has been shut down')
            for i, load in enumerate(self.load):
                if load and i not in self._workers:
                    self._workers[i] = _Worker(self.name, i, self.prefix, level)

    def workers(self, indices: list[int]) -> list["_Worker"]:
        self.start()
        return [self._workers[i] for i in indices]

    def shutdown(self) -> None:
        """Stop every worker and unlink every shared-memory block; idempotent."""
        self._stop()


class _Worker:
    """One worker process and the channel to it. `lock` serializes the requests: one at a time, each answered."""

    def __init__(self, pool: str, index: int, prefix: str, log_level: int):
        ctx = multiprocessing.get_context("spawn")
        self.pool = pool
        self.index = index
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=worker_main, args=(child, f"{prefix}w{index}", os.getpid(), log_level),
                                   daemon=True, name=f"framegraph-{pool}-{index}")
        _start(self.process)
        child.close()  # else the pipe never reports the worker's death
        self.lock = threading.Lock()
        self.writer = SharedWriter(f"{prefix}p{index}")
        self.reader = SharedReader()
        self.pid: int | None = None
        self.death: str | None = None

    def send(self, message: tuple) -> None:
        """Under `lock`."""
        if self.death:
            raise WorkerDiedError(self.death)
        try:
            if self.pid is None:
                if not self.conn.poll(START_TIMEOUT):
                    self.process.kill()
                    raise EOFError
                self.pid = self.conn.recv()[1]
            self.conn.send(message)
        except (EOFError, OSError):
            raise self._died() from None

    def receive(self) -> tuple:
        """Under `lock`: the reply, its payload decoded (None after an error)."""
        try:
            reply = self.conn.recv()
        except (EOFError, OSError):
            raise self._died() from None
        return reply, (self.reader.decode(reply[1]) if reply[0] == "ok" else None)

    def _died(self) -> WorkerDiedError:
        self.process.join(1.0)
        code = self.process.exitcode
        if code is None:
            why = "its pipe closed"
        elif code < 0:
            why = f"killed by {signal.Signals(-code).name}" if -code in signal.valid_signals() else f"signal {-code}"
        else:
            why = f"exit code {code}"
        self.death = f'worker process {self.pid or self.process.pid} of executor "{self.pool}" died ({why})'
        if self.pid is None:  # before it was ready: its traceback is on stderr
            self.death += (" while starting; see its error above (a script that runs a graph with a process "
                           "executor needs the `if __name__ == \"__main__\":` guard that multiprocessing's spawn "
                           "requires)")
        return WorkerDiedError(self.death)


def _start(process) -> None:
    me = multiprocessing.current_process()
    if not me.daemon:
        process.start()
        return
    # A batch worker (run-graph --output-dir) is daemonic, and multiprocessing refuses children to a daemonic
    # process because it may be killed without stopping them. Ours watch their parent and exit when it is gone.
    me.daemon = False
    try:
        process.start()
    finally:
        me.daemon = True


def _stop_workers(workers: dict[int, _Worker], prefix: str) -> None:
    for w in workers.values():
        if w.lock.acquire(timeout=0.5):  # not held by a call that is stuck: ask nicely
            try:
                w.conn.send(("exit",))
            except OSError:
                pass
            finally:
                w.lock.release()
    deadline = time.monotonic() + STOP_TIMEOUT
    for w in workers.values():
        w.process.join(max(0.0, deadline - time.monotonic()))
        if w.process.is_alive():
            log.warning('executor "%s": worker process %s did not exit; killing it', w.pool, w.process.pid)
            w.process.kill()
            w.process.join(5.0)
    for w in workers.values():
        w.writer.close()
        w.reader.close()
        w.conn.close()
    unlink_blocks(prefix)  # those of workers that were killed before they could unlink their own


class RemoteCalculator:
    """Stands in for a node's calculator in the parent: each call is sent to a worker hosting an instance."""

    def __init__(self, pool: ProcessPool, resolved, runner, side_inputs: dict[str, Any], hosts: list[int]):
        self.pool = pool
        self.runner = runner
        self.key = resolved.name
        self.cls = resolved.cls
        self.calculator_name = resolved.config.calculator
        self.options = resolved.options
        self.side_inputs = side_inputs
        self.hosts = hosts
        self.in_tags = list(resolved.cls.input_ports())
        self.instances: list[_Worker] = []
        self.free: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self.awaiting: dict[int, bool] = {}  # worker index -> its instance's awaits_back_edges() after its last call

    def open(self, ctx) -> None:
        # Side inputs are the whole graph's: one that does not pickle (a callback for a sink on a thread) stays
        # behind, and only reading it in the worker is an error.
        sent, unsent = {}, {}
        for name, value in self.side_inputs.items():
            try:
                pickle.dumps(value)
                sent[name] = value
            except Exception as exc:
                unsent[name] = f"it does not pickle ({type(exc).__name__}: {exc})"
        message = ("open", self.key, self.cls.__module__, self.cls.__qualname__, self.calculator_name,
                   ctx.calculator_name, pack_options(self.options), pickle.dumps((sent, unsent)))
        workers = self.pool.workers(self.hosts)
        for w in workers:  # all at once: each may load a model
            w.lock.acquire()
        try:
            for w in workers:
                w.send(message)
            replies = [w.receive() for w in workers]
        finally:
            for w in workers:
                w.lock.release()
        for w, (reply, payload) in zip(workers, replies):
            self._apply(ctx, reply, payload, w)
        self.instances = workers
        for w in workers:
            self.free.put(w)

    def process(self, ctx) -> Any:
        inputs = {tag: ctx.get(tag) for tag in self.in_tags}
        worker = self.free.get()
        try:
            with worker.lock:
                worker.send(("call", self.key, "process", ctx.timestamp, worker.writer.encode(inputs),
                             self.runner.stopping))
                reply, payload = worker.receive()
        finally:
            self.free.put(worker)
        return self._apply(ctx, reply, payload, worker)

    def close(self, ctx) -> None:
        failures = []
        for w in self.instances:
            with w.lock:
                try:
                    w.send(("call", self.key, "close", None, w.writer.encode({}), self.runner.stopping))
                    reply, payload = w.receive()
                except WorkerDiedError as exc:
                    if not self.runner.cancelled:  # the graph has not failed yet: this is why it does
                        failures.append(exc)
                    continue  # after a failure: the instance died with its worker, nothing to close
            try:
                self._apply(ctx, reply, payload, w)
            except Exception as exc:
                failures.append(exc)
        if failures:
            raise failures[0]

    def awaits_back_edges(self) -> bool:
        """What the instances said after their last calls (the scheduler asks under its lock: no round trip)."""
        return any(self.awaiting.values())

    def _apply(self, ctx, reply: tuple, payload: Any, worker: "_Worker") -> Any:
        """Replay what the call did: its log records, problems and stop request, then its outputs or its error."""
        for event in reply[-1]:
            if event[0] == "log":
                logging.getLogger(event[1]).log(event[2], "%s", event[3])
            elif event[0] == "problem":
                self.runner.report_problem(event[1])
            elif event[0] == "stop":
                self.runner.request_stop()
            elif event[0] == "status":
                ctx.set_status(event[1])
            elif event[0] == "awaits":
                self.awaiting[worker.index] = event[1]
        if reply[0] == "error":
            raise _rebuild(reply)
        outbox, result = payload
        for tag, index, ts, value in outbox:
            if index == -1:
                ctx.set_next_timestamp_bound(tag, ts)
            else:
                ctx.send(tag, value, ts, index)
        return result


def _rebuild(reply: tuple) -> BaseException:
    _, pickled, type_name, message, text, _ = reply
    exc = None
    if pickled is not None:
        try:
            exc = pickle.loads(pickled)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = WorkerError(f"{type_name}: {message}")
    exc.__cause__ = RemoteTraceback(text)
    try:
        exc.remote_traceback = text
    except AttributeError:  # an exception type with __slots__
        pass
    return exc
