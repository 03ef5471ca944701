"""Batch runs on a Ray cluster (``--ray [ADDRESS]``): each file a Ray task running `run_item`, progress streamed
back through a small actor. Ray (``pip install "framegraph[ray]"``) is imported only here.

Outputs go to the paths the driver planned, so every node must see the output folder at the same path (a
shared filesystem); the nodes need framegraph and the graph's engines installed, as on the driver. A task whose
worker process or node died is retried by Ray (``max_retries``); a file whose graph failed comes back as a
failure and is retried by the driver like a local one.
"""
from __future__ import annotations

import time

from .batch_driver import Failed, Finished, Progress, Task
from .batch_job import JobSpec, one_line, run_item
from .errors import EngineUnavailableError

INSTALL_HINT = 'Ray is not installed: pip install "framegraph[ray]" (or pip install ray)'


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise EngineUnavailableError(f"--ray: {INSTALL_HINT}") from exc
    return ray


class RayPool:
    """The driver's backend for ``--ray``: at most `jobs` tasks in flight (default: the cluster's CPUs over the
    CPUs one file asks for)."""

    def __init__(self, spec: JobSpec, address: str, jobs: int | None, cpus_per_file: int = 1,
                 gpus_per_file: float = 0, max_retries: int = 3):
        ray = self._ray = _ray()
        if not ray.is_initialized():
            ray.init(address=None if address == "local" else address, logging_level="warning",
                     log_to_driver=False, configure_logging=False)
        self.address = address
        self.spec = spec
        cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
        self.jobs = jobs or max(1, cluster_cpus // max(1, cpus_per_file))
        self._board = _board_class(ray).remote()
        self._remote = ray.remote(_run_on_ray).options(num_cpus=cpus_per_file, num_gpus=gpus_per_file,
                                                         max_retries=max_retries, retry_exceptions=False)
        self._running: dict = {}  # ObjectRef -> Task

    def describe(self) -> str:
        nodes = [n for n in self._ray.nodes() if n.get("Alive")]
        cpus = int(self._ray.cluster_resources().get("CPU", 0))
        return f"{self.address}: {len(nodes)} nodes, {cpus} CPUs, {self.jobs} files at once"

    @property
    def free(self) -> int:
        return self.jobs - len(self._running)

    def submit(self, task: Task) -> None:
        self._running[self._remote.remote(self.spec, task, self._board)] = task

    def poll(self, timeout: float) -> list:
        events = []
        if self._running:
            ready, _ = self._ray.wait(list(self._running), num_returns=len(self._running), timeout=timeout)
            for ref in ready:
                task = self._running.pop(ref)
                try:
                    kind, value = self._ray.get(ref)
                except Exception as exc:  # noqa: BLE001 -- the worker or node died more often than Ray retries
                    events.append(Failed(task, f"the Ray task died: {one_line(exc)}", died=True))
                    continue
                events.append(Finished(task, value) if kind == "done" else Failed(task, value))
        else:
            time.sleep(timeout)
        by_token = {task.token: task for task in self._running.values()}
        for token, (frames, total) in self._ray.get(self._board.drain.remote()).items():
            if token in by_token:
                events.append(Progress(by_token[token], frames, total))
        return events

    def running(self) -> list[Task]:
        return list(self._running.values())

    def close(self, kill: bool = False) -> None:
        if kill:
            for ref in self._running:
                self._ray.cancel(ref, force=True)
        self._running = {}
        self._ray.shutdown()


def _run_on_ray(spec: JobSpec, task: Task, board):
    last = [0.0]

    def progress(frames: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5:
            last[0] = now
            board.report.remote(task.token, frames, total)

    try:
        return "done", run_item(spec, task.item, task.token, progress)
    except Exception as exc:  # noqa: BLE001 -- the driver reports it and retries
        return "failed", one_line(exc)


def _board_class(ray):
    @ray.remote(num_cpus=0)
    class ProgressBoard:
        """The latest frame count of every task in flight, drained by the driver."""

        def __init__(self):
            self.latest: dict = {}

        def report(self, token: str, frames: int, total: int) -> None:
            self.latest[token] = (frames, total)

        def drain(self) -> dict:
            latest, self.latest = self.latest, {}
            return latest

    return ProgressBoard
