"""Batch runs, step 3: the driver. Hands files to a backend (`LocalPool`, `RayPool`), retries the ones that fail,
writes the manifest, shows an overall progress bar and one line per finished or failed file.

A backend offers ``free`` (how many more tasks it takes now), ``submit(task)``, ``poll(timeout)`` (the
`Progress`, `Finished` and `Failed` events since the last call), ``running()`` and ``close(kill)``.
"""
from __future__ import annotations

import os
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

from .batch import BatchItem, Manifest, ManifestRecord
from .batch_job import ItemResult, JobSpec
from .batch_store import MANIFEST_NAME


@dataclass(frozen=True)
class Task:
    """One attempt at one file; `token` names its temporary outputs."""

    item: BatchItem
    attempt: int = 1
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])


@dataclass(frozen=True)
class Progress:
    task: Task
    frames: int
    total: int


@dataclass(frozen=True)
class Finished:
    task: Task
    result: ItemResult


@dataclass(frozen=True)
class Failed:
    task: Task
    error: str
    died: bool = False  # the process (or node) running it went away


@dataclass
class BatchSummary:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    frames: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    failures: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else 1 if self.failed else 0


def default_jobs(config, files: int, threads: int = 0) -> int:
    """As many files at once as the cores allow for the threads the graph declares (its executors: the
    inference thread, typically; nodes on threads of their own mostly wait), at least one, at most `files`."""
    return max(1, min(files, available_cores() // cores_per_file(config, threads)))


def available_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cores_per_file(config, threads: int = 0) -> int:
    """The cores one run of the graph keeps busy, as its declared executor threads say (at least one); with
    `threads` (``--threads``), the nodes without an executor of their own share that many more."""
    return max(1, threads + sum(ex.threads for name, ex in config.executors.items() if name != "default"))


def run_batch(items: list[BatchItem], spec: JobSpec, backend, retries: int = 1, progress: bool = True,
              say=None) -> BatchSummary:
    """Run every item not done in an earlier run (the manifest in `spec.store` says), `retries` more attempts
    for one that fails; returns the counts. Ctrl-C stops the backend, removes what was half-written and returns
    ``interrupted`` (a rerun of the same command resumes)."""
    store = spec.outputs
    manifest = Manifest(store)
    summary = BatchSummary()
    todo = [item for item in items if not manifest.is_done(item, spec.fingerprint)]
    summary.skipped = len(items) - len(todo)
    bar = _bar(len(todo), progress)
    say = say or (lambda text: _say(bar, text))
    if summary.skipped:
        say(f"skipped: {summary.skipped} of {len(items)} files done in an earlier run ({store.show(MANIFEST_NAME)})")
    for item in todo:
        for final in item.outputs.values():
            store.remove_temps(final)
    queue = deque(Task(item) for item in todo)
    live: dict[str, int] = {}  # frames of the files in flight
    started = time.monotonic()
    try:
        while queue or backend.running():
            while queue and backend.free > 0:
                backend.submit(queue.popleft())
            for event in backend.poll(0.25):
                name = event.task.item.name
                if isinstance(event, Progress):
                    live[name] = event.frames
                    continue
                live.pop(name, None)
                if isinstance(event, Finished):
                    try:
                        _finished(event, manifest, summary, say, spec.fingerprint)
                    except OSError as exc:  # the store refused a file the worker sent back: that file failed
                        _clean(event.task, store)
                        _record(manifest, event.task, "failed", str(exc), spec.fingerprint)
                        summary.failed += 1
                        summary.failures.append(name)
                        say(f"error: {name}: {exc}")
                elif event.task.attempt <= retries:
                    _clean(event.task, store)
                    say(f"retry: {name} (attempt {event.task.attempt} of {retries + 1} failed: {event.error})")
                    queue.append(Task(event.task.item, event.task.attempt + 1))
                    continue
                else:
                    _clean(event.task, store)
                    _record(manifest, event.task, "failed", event.error, spec.fingerprint)
                    summary.failed += 1
                    summary.failures.append(name)
                    say(f"error: {name}: {event.error}")
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                frames = summary.frames + sum(live.values())
                elapsed = time.monotonic() - started
                bar.set_postfix_str(f"{frames} frames, {frames / elapsed if elapsed else 0:.1f} fps", refresh=True)
    except KeyboardInterrupt:
        summary.interrupted = True
        running = backend.running()
        backend.close(kill=True)
        for task in running:
            _clean(task, store)
        say(f"interrupted: {len(running)} files stopped and removed, {len(queue)} not started; "
            "run the same command again to resume")
    else:
        backend.close()
    finally:
        if bar is not None:
            bar.close()
    summary.seconds = time.monotonic() - started
    return summary


def _finished(event: Finished, manifest: Manifest, summary: BatchSummary, say, fingerprint: str) -> None:
    task, result = event.task, event.result
    for name, data in result.payloads.items():  # written by a worker that cannot reach the store itself
        manifest.store.store_bytes(data, name, task.token)
    summary.frames += result.frames
    outputs = result.outputs
    if result.problems:
        summary.failed += 1
        summary.failures.append(task.item.name)
        _record(manifest, task, "failed", result.problems[0], fingerprint, result, outputs)
        written = f"what decoded was written: {', '.join(outputs)}" if outputs else "nothing was written"
        say(f"warning: {task.item.name}: {result.problems[0]} ({written})")
        return
    summary.done += 1
    _record(manifest, task, "done", "", fingerprint, result, outputs)
    shown = ", ".join(manifest.store.show(o) for o in outputs) or "nothing"
    say(f"done: {task.item.name} ({result.frames} frames, {result.seconds:.1f} s) -> {shown}")


def _record(manifest: Manifest, task: Task, status: str, error: str, fingerprint: str,
            result: ItemResult | None = None, outputs: list[str] | None = None) -> None:
    item = task.item
    manifest.append(ManifestRecord(item.name, item.size, item.mtime_ns, outputs or [],
                                   result.frames if result else 0, round(result.seconds, 3) if result else 0.0,
                                   status, error, task.attempt, fingerprint))


def _clean(task: Task, store) -> None:
    """What a failed or killed attempt left under temporary names."""
    for final in task.item.outputs.values():
        store.remove_temps(final)


def _bar(total: int, enabled: bool):
    if not enabled or not total:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="file", desc="files", dynamic_ncols=True, disable=None, file=sys.stderr)


def _say(bar, text: str) -> None:
    if bar is not None and not bar.disable:
        bar.write(text, file=sys.stderr)
    else:
        print(text, file=sys.stderr, flush=True)
