"""Batch runs on this machine: N worker processes, one file at a time each.

Each worker has a pipe of its own, so the driver always knows which file a worker holds: a worker that dies
(killed, out of memory, a crash in a native library) fails that file's attempt, and a fresh worker takes its
place. Workers ignore Ctrl-C; the driver decides (it stops them and cleans up).
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import time
from multiprocessing.connection import wait

from .batch_driver import Failed, Finished, Progress, Task
from .batch_job import JobSpec, one_line, run_item


class LocalPool:
    """The driver's backend for ``--jobs N``."""

    def __init__(self, spec: JobSpec, jobs: int):
        self.spec, self.jobs = spec, jobs
        self._ctx = mp.get_context("spawn")  # no fork of a process that may hold threads (the progress bar's)
        self._idle: list[_Worker] = []
        self._busy: dict[int, tuple[_Worker, Task]] = {}  # worker pid -> (worker, task)

    @property
    def free(self) -> int:
        return self.jobs - len(self._busy)

    def submit(self, task: Task) -> None:
        worker = self._idle.pop() if self._idle else _Worker(self._ctx, self.spec)
        worker.conn.send(task)
        self._busy[worker.process.pid] = (worker, task)

    def poll(self, timeout: float) -> list:
        if not self._busy:
            time.sleep(timeout)
            return []
        waiting = {}
        for worker, task in self._busy.values():
            waiting[worker.conn] = worker
            waiting[worker.process.sentinel] = worker
        events = []
        for ready in wait(list(waiting), timeout):
            worker = waiting[ready]
            if worker.process.pid not in self._busy:
                continue  # both its pipe and its sentinel were ready
            _, task = self._busy[worker.process.pid]
            message = None
            try:
                if worker.conn.poll():
                    message = worker.conn.recv()
            except (EOFError, OSError):
                message = None
            if message is None:
                worker.process.join(timeout=1.0)
                code = worker.process.exitcode
                why = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                del self._busy[worker.process.pid]
                worker.close()
                events.append(Failed(task, f"the worker process died ({why})", died=True))
                continue
            kind = message[0]
            if kind == "progress":
                events.append(Progress(task, message[1], message[2]))
            else:
                del self._busy[worker.process.pid]
                self._idle.append(worker)
                events.append(Finished(task, message[1]) if kind == "done" else Failed(task, message[1]))
        return events

    def running(self) -> list[Task]:
        return [task for _, task in self._busy.values()]

    def close(self, kill: bool = False) -> None:
        for worker in self._idle + [w for w, _ in self._busy.values()]:
            worker.close(kill)
        self._idle, self._busy = [], {}


class _Worker:
    def __init__(self, ctx, spec: JobSpec):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, spec), daemon=True,
                                   name="framegraph-batch-worker")
        self.process.start()
        child.close()

    def close(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            try:
                self.conn.send(None)
            except OSError:
                pass
        self.process.join(timeout=None if not kill else 5.0)
        self.conn.close()


def _worker_main(conn, spec: JobSpec) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(format="[framegraph] %(message)s")
    logging.getLogger("framegraph").setLevel(spec.log_level)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return  # the driver is gone
        if task is None:
            return
        last = [0.0]

        def progress(frames: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.2:
                last[0] = now
                conn.send(("progress", frames, total))

        try:
            result = run_item(spec, task.item, task.token, progress)
        except Exception as exc:  # noqa: BLE001 -- the driver reports it and retries
            conn.send(("failed", one_line(exc)))
        else:
            conn.send(("done", result))
