"""An executor: a pool of worker threads and the nodes ready to run on it (the scheduler's, in runner.py).

A process executor is one of these too, its threads each driving a call in a worker process
(process_executor.py): the scheduler runs its nodes like any other."""
from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .node import NodeRuntime

#: The executor a graph may declare for every node that names none (``executors: {default: {threads: 2}}``).
#: Without it each such node runs on a thread of its own.
DEFAULT_EXECUTOR = "default"


class Executor:
    """A pool of worker threads and the nodes ready to run on it; guarded by the runner's lock."""

    def __init__(self, name: str, threads: int):
        self.name = name
        self.threads = threads
        self.ready: deque[NodeRuntime] = deque()
        self.workers: list[threading.Thread] = []
        # A worker with nothing to do sleeps on a lock of its own, held, which whoever schedules a node releases
        # to wake it: what threading.Condition does inside, without its Python bookkeeping on every wake-up
        # (one per batch per hop, a good part of the cost of a cheap node).
        self.sleeping: list[threading.Lock] = []

    def sleep(self, lock: threading.Lock, wake: threading.Lock) -> None:
        """Called with `lock` held by a worker whose `wake` lock it holds; returns, `lock` held, once woken."""
        self.sleeping.append(wake)
        lock.release()
        wake.acquire()
        lock.acquire()

    def wake_all(self) -> None:
        while self.sleeping:
            self.sleeping.pop().release()
