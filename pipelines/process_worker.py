"""The worker side of a process executor: a loop that hosts calculator instances and runs their calls.

Started with the 'spawn' start method by `process_executor.ProcessPool` (a fresh interpreter: nothing of the
parent's threads or locks comes along). It receives requests on a pipe, one at a time, and answers each:
``("open", node, ...)`` builds the node's calculator from its class (imported by module and name, as in the
parent) and its options (pickled: they are small; see `process_executor.pack_options`), and calls ``open``; ``("call", node, method, ...)`` runs
``process`` or ``close`` on it, its inputs and outputs crossing through shared memory (`shared_frames`).

A worker ignores SIGINT and SIGTERM: Ctrl-C in a terminal reaches the whole process group, and the run-graph
process, which decides how to stop, still needs its workers to drain and close. A worker whose parent is gone
(killed, or exited without closing it) unlinks its shared memory and exits, even in the middle of a call.
"""
from __future__ import annotations

import importlib
import logging
import os
import pickle
import signal
import threading
import traceback
from types import SimpleNamespace
from typing import Any

from .calculator import Calculator, CalculatorContext
from .errors import PipelineError
from .packet import Stop
from .shared_frames import SharedReader, SharedWriter

ORPHAN_POLL_SECONDS = 0.2


class _Events(logging.Handler):
    """What a call did besides its outputs, for the parent to replay: log records, problems, a stop request."""

    def __init__(self):
        super().__init__()
        self.items: list[tuple] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.items.append(("log", record.name, record.levelno, record.getMessage()))

    def take(self) -> list[tuple]:
        items, self.items = self.items, []
        return items


class _StatsView:
    """A worker-side node's `stats`: CalculatorContext.set_status writes `status`, which goes to the parent."""

    def __init__(self, events: _Events):
        self.__dict__["_events"] = events

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "status":
            self._events.items.append(("status", value))


class _RunnerView:
    """What a worker-side CalculatorContext sees of the runner: problems and stops are sent back to the parent."""

    def __init__(self, events: _Events):
        self.events = events
        self.stopping = False

    def report_problem(self, message: str) -> None:
        self.events.items.append(("problem", message))

    def request_stop(self) -> None:
        self.events.items.append(("stop",))


class _SideInputs(dict):
    """The graph's side inputs as a worker has them: reading one that could not be sent is an error saying why."""

    def __init__(self, values: dict[str, Any], unsent: dict[str, str]):
        super().__init__(values)
        self.unsent = unsent

    def __missing__(self, name: str) -> Any:
        if name in self.unsent:
            raise PipelineError(f"side input '{name}' cannot reach a worker process: {self.unsent[name]}")
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self.unsent else super().get(name, default)


def find_class(module: str, qualname: str, name: str) -> type:
    """The calculator class the parent validated: by module and qualified name, or, for a class made by a
    decorator (``@calculator`` on a function), the registered name once its module is imported."""
    from .registry import get_calculator

    obj: Any = importlib.import_module(module)
    try:
        for part in qualname.split("."):
            obj = getattr(obj, part)
        if isinstance(obj, type):
            return obj
    except AttributeError:
        pass
    return get_calculator(name)


def worker_main(conn, prefix: str, parent_pid: int, log_level: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    writer, reader = SharedWriter(prefix), SharedReader()
    done = threading.Event()
    threading.Thread(target=_watch_parent, args=(parent_pid, writer, reader, done), daemon=True,
                     name="framegraph-orphan-watch").start()
    events = _Events()
    root = logging.getLogger("framegraph")
    root.handlers[:] = [events]
    root.setLevel(log_level)
    root.propagate = False
    runner = _RunnerView(events)
    instances: dict[str, tuple[Any, CalculatorContext]] = {}
    orphaned = True  # until the parent says "exit"
    try:
        try:
            conn.send(("ready", os.getpid()))
        except OSError:
            return  # the parent is gone already
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            if request[0] == "exit":
                orphaned = False
                return
            reply = _serve(request, instances, runner, events, writer, reader)
            try:
                conn.send(reply)
            except OSError:
                return  # the parent is gone
    finally:
        done.set()
        if orphaned:
            _unlink_known(writer, reader)
        writer.close()
        reader.close()


def _serve(request: tuple, instances: dict, runner: _RunnerView, events: _Events, writer: SharedWriter,
           reader: SharedReader) -> tuple:
    op, key = request[0], request[1]
    try:
        if op == "open":
            _, _, module, qualname, name, calculator_name, options, side_inputs = request
            cls = find_class(module, qualname, name)
            node = SimpleNamespace(name=key, calculator_name=calculator_name, runner=runner,
                                   stats=_StatsView(runner.events))
            how, packed = options
            options = pickle.loads(packed) if how == "object" else cls.Options(**pickle.loads(packed))
            calc = cls(options)
            ctx = CalculatorContext(node, options, _SideInputs(*pickle.loads(side_inputs)))
            outbox = ctx.begin(None, {})
            calc.open(ctx)
            instances[key] = (calc, ctx)
            result = None
        else:
            _, _, method, timestamp, message, stopping = request
            runner.stopping = stopping
            calc, ctx = instances[key]
            outbox = ctx.begin(timestamp, reader.decode(message))
            if method == "close":
                del instances[key]
            try:
                result = (calc.close if method == "close" else calc.process)(ctx)
            except Stop:
                result = Stop
        if type(calc).awaits_back_edges is not Calculator.awaits_back_edges:
            # The scheduler asks under its lock, so the parent answers from the state after the last call.
            events.items.append(("awaits", bool(calc.awaits_back_edges())))
        return ("ok", writer.encode((outbox, result)), events.take())
    except Exception as exc:
        text = traceback.format_exc()
        try:
            pickled = pickle.dumps(exc)
            pickle.loads(pickled)  # some exceptions pickle but cannot be rebuilt
        except Exception:
            pickled = None
        return ("error", pickled, type(exc).__name__, str(exc), text, events.take())


def _watch_parent(parent_pid: int, writer: SharedWriter, reader: SharedReader, done: threading.Event) -> None:
    while not done.wait(ORPHAN_POLL_SECONDS):
        if os.getppid() != parent_pid:
            # The parent was killed, and a call in progress may run for a long time yet: leave now.
            _unlink_known(writer, reader)
            os._exit(1)


def _unlink_known(writer: SharedWriter, reader: SharedReader) -> None:
    """Without a parent, nobody else will unlink the blocks this worker knows, the parent's one included. By name
    only: the main thread may still be using the mappings until the process ends."""
    for block in (writer.block, reader.block):
        if block is not None:
            try:
                block.unlink()
            except FileNotFoundError:
                pass
