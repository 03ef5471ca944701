"""Batch runs on a Ray cluster (``--ray [ADDRESS]``): each file a Ray task running `run_item`, a streaming
generator that yields its progress and then its result (no actor to start: that would cost every batch a worker
process). Ray (``pip install "framegraph[ray]"``) is imported only here.

Outputs go to the paths the driver planned, so every node must see the output folder at the same path (a
shared filesystem); the nodes need framegraph and the graph's engines installed, as on the driver. A task whose
worker process or node died is retried by Ray (``max_retries``); a file whose graph failed comes back as a
failure and is retried by the driver like a local one.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import replace

from .batch_driver import Failed, Finished, Progress, Task
from .batch_job import JobSpec, one_line, run_item
from .errors import EngineUnavailableError

log = logging.getLogger("framegraph.batch")
INSTALL_HINT = 'Ray is not installed: pip install "framegraph[ray]" (or pip install ray)'


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise EngineUnavailableError(f"--ray: {INSTALL_HINT}") from exc
    return ray


def import_ray() -> None:
    """Import Ray ahead of its use (in a thread while the driver plans the batch); a missing Ray is reported
    where it is used."""
    try:
        import ray  # noqa: F401
    except ImportError:
        pass


CLIENT_ATTEMPTS = 3  # Ray Client connections tried before giving up


def init_ray(ray, address: str | None, attempts: int = CLIENT_ATTEMPTS, **kwargs) -> None:
    """`ray.init(address, **kwargs)`; a Ray Client address (ray://) is tried up to `attempts` times. Its proxy
    starts a server process for each driver, and on a busy 2-core machine that start now and then fails
    ("Starting Ray client server failed", ConnectionAbortedError); the next one started works."""
    for attempt in range(1, attempts + 1):
        try:
            ray.init(address=address, **kwargs)
            return
        except ConnectionError as exc:  # ConnectionAbortedError among them
            if not str(address or "").startswith("ray://") or attempt == attempts:
                raise
            why = [line for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
            log.warning("--ray: connecting to %s failed (%s); trying again (%d of %d)", address, why[-1].strip(),
                        attempt + 1, attempts)
            try:
                ray.shutdown()  # whatever half of the client connection was set up
            except Exception:  # noqa: BLE001 - nothing to shut down is fine
                pass
            time.sleep(0.5 * attempt)


class RayPool:
    """The driver's backend for ``--ray``: at most `jobs` tasks in flight (default: the cluster's CPUs over the
    CPUs one file asks for)."""

    def __init__(self, spec: JobSpec, address: str, jobs: int | None, cpus_per_file: int = 1,
                 gpus_per_file: float = 0, max_retries: int = 3):
        ray = self._ray = _ray()
        if not ray.is_initialized():
            local = address == "local"
            # Ray starts its workers at nice 15, below its own agents and this driver; on a cluster of its own the
            # batch is the work, and at 15 it lost ~15% to them on 2 cores (docs/benchmarks.md). A cluster that
            # `ray start` made keeps its own setting (RAY_worker_niceness there).
            init_ray(ray, address=None if local else address, logging_level="warning", log_to_driver=False,
                     configure_logging=False, **({"_system_config": {"worker_niceness": 0}} if local else {}))
        self.address = address
        self.spec = spec
        cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
        # A task asking for more CPUs than any one node has would wait forever (Ray only warns): ask for what the
        # largest node has instead, and say so.
        largest = max((int(n.get("Resources", {}).get("CPU", 0)) for n in ray.nodes() if n.get("Alive")), default=1)
        if cpus_per_file > largest >= 1:
            log.warning("--ray: a file of this graph keeps %d cores busy, but the largest node has %d CPU%s: each "
                        "file asks for %d", cpus_per_file, largest, "s" if largest > 1 else "", largest)
            cpus_per_file = largest
        self.cpus_per_file = cpus_per_file
        if not spec.decode_threads:  # a task's decoder uses the CPUs it asked for, not every core of its node
            self.spec = spec = replace(spec, decode_threads=cpus_per_file)
        self.jobs = jobs or max(1, cluster_cpus // max(1, cpus_per_file))
        # Ray Client (ray://) has no streaming generators: there a task returns its result alone, and the
        # progress bar counts files as they finish, not frames.
        self.streaming = not address.startswith("ray://")
        run = _run_on_ray if self.streaming else _run_on_ray_once
        self._remote = ray.remote(run).options(num_cpus=cpus_per_file, num_gpus=gpus_per_file,
                                               num_returns="streaming" if self.streaming else 1,
                                               max_retries=max_retries, retry_exceptions=False)
        self._running: dict = {}  # ObjectRefGenerator -> Task

    def describe(self) -> str:
        nodes = [n for n in self._ray.nodes() if n.get("Alive")]
        cpus = int(self._ray.cluster_resources().get("CPU", 0))
        return f"{self.address}: {len(nodes)} nodes, {cpus} CPUs, {self.jobs} files at once"

    @property
    def free(self) -> int:
        return self.jobs - len(self._running)

    def submit(self, task: Task) -> None:
        self._running[self._remote.remote(self.spec, task)] = task

    def poll(self, timeout: float) -> list:
        if not self._running:
            time.sleep(timeout)
            return []
        events = []
        # Back as soon as one task has something (a finished file frees its slot at once), with whatever else
        # is ready by then.
        ready, rest = self._ray.wait(list(self._running), num_returns=1, timeout=timeout)
        if ready and rest:
            ready += self._ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        for gen in ready:
            events += self._drain(gen)
        return events

    def _drain(self, gen) -> list:
        """The events `gen` has ready: progress, then its result once it ends."""
        task, events = self._running[gen], []
        while True:
            try:
                kind, *value = self._ray.get(next(gen) if self.streaming else gen)
            except StopIteration:
                kind, value = "died", ["it ended without a result"]
            except Exception as exc:  # noqa: BLE001 -- the worker or node died more often than Ray retries
                kind, value = "died", [one_line(exc)]
            if kind == "progress":
                events.append(Progress(task, *value))
                if self._ray.wait([gen], timeout=0)[0]:
                    continue
                return events
            del self._running[gen]
            if kind == "done":
                events.append(Finished(task, value[0]))
            elif kind == "failed":
                events.append(Failed(task, value[0]))
            else:
                events.append(Failed(task, f"the Ray task died: {value[0]}", died=True))
            return events

    def running(self) -> list[Task]:
        return list(self._running.values())

    def close(self, kill: bool = False) -> None:
        if kill:
            for ref in self._running:
                self._ray.cancel(ref, force=True)
        self._running = {}
        self._ray.shutdown()


def _run_on_ray_once(spec: JobSpec, task: Task) -> tuple:
    """Runs on a Ray worker, for a Ray Client driver: ``("done", ItemResult)`` or ``("failed", message)``."""
    try:
        return "done", run_item(spec, task.item, task.token)
    except Exception as exc:  # noqa: BLE001 -- the driver reports it and retries
        return "failed", one_line(exc)


def _run_on_ray(spec: JobSpec, task: Task):
    """Runs on a Ray worker: yields ``("progress", frames, total)`` now and then, then ``("done", ItemResult)``
    or ``("failed", message)``."""
    events: queue.SimpleQueue = queue.SimpleQueue()
    last = [0.0]

    def progress(frames: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5:
            last[0] = now
            events.put(("progress", frames, total))

    def work() -> None:
        try:
            events.put(("done", run_item(spec, task.item, task.token, progress)))
        except Exception as exc:  # noqa: BLE001 -- the driver reports it and retries
            events.put(("failed", one_line(exc)))

    threading.Thread(target=work, name="framegraph-batch-item", daemon=True).start()
    while True:
        event = events.get()
        yield event
        if event[0] != "progress":
            return
