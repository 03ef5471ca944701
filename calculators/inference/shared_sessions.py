"""One engine session per (engine, model file, engine options, batching) for the whole process, reference-counted,
batching the frames of several streams into one call where the model takes a batch.

Several instances of a graph in one process (`pipelines.multistream`: one per camera) each open their own
InferenceCalculator; loading the model once per stream would cost its memory and load time once per stream. They
share one session instead: the first `acquire` loads it, later ones get a handle on the same model, the last
`release` closes it. Calls are serialized (engines promise one caller at a time), so sharing is safe whichever
engine runs it; the nodes of one stream still overlap with the others' decode, drawing and encoding. A session
that says it is `concurrent` (ONNX Runtime on the CPU) is called by the streams side by side instead.

With `max_batch` > 1 and a model whose first dimension is dynamic, calls that arrive together run as one: the
first caller waits up to `timeout_s` for the other streams that are feeding the session (those that called in
the last `ACTIVE_WINDOW_S`), concatenates their inputs on the first axis, runs once and hands each caller its
own rows, as Triton's dynamic batcher and DeepStream's nvstreammux do. A stream that stops calling (dead,
reconnecting) drops out of the wait within that window, so it never holds the others back for long; a stream
alone never waits. On an engine that takes callers side by side, a batch per core may run at once (one caller
at a time gathers); the frames that arrive meanwhile queue for the next, so ``timeout_s`` 0 batches what comes
together without anyone waiting for a batch to fill.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Hashable, Sequence

import numpy as np

from pipelines.engines import Session

log = logging.getLogger("framegraph.inference")

#: A stream that has not called for this long is not waited for (at least 50 batch timeouts).
ACTIVE_WINDOW_S = 0.25


@dataclass(frozen=True)
class Batching:
    """How calls from several users are combined: at most `max_batch` rows per call, the first waiting at most
    `timeout_s` for the others. max_batch 1: one call per frame."""

    max_batch: int = 1
    timeout_s: float = 0.002


class _Request:
    __slots__ = ("arrays", "rows", "result", "error", "done", "taken")

    def __init__(self, arrays: list):
        self.arrays = arrays
        self.rows = int(arrays[0].shape[0])
        self.result: list | None = None
        self.error: BaseException | None = None
        self.done = False
        self.taken = False  # in a batch that a caller is running

    def fits(self, other: "_Request") -> bool:
        return all(a.shape[1:] == b.shape[1:] and a.dtype == b.dtype for a, b in zip(self.arrays, other.arrays))


class SharedModel:
    """The loaded session and its users' traffic: serialized calls, batched where the model allows."""

    def __init__(self, inner: Session, batching: Batching):
        self.inner = inner
        self.batching = batching
        # Every input batch-dynamic: rows of several callers can be stacked.
        self.batchable = batching.max_batch > 1 and all(s.shape and s.shape[0] is None for s in inner.inputs)
        self._run_lock = threading.Lock()
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        # Callers running a batch. An engine that takes callers side by side runs a batch per core at once: while
        # they run, the frames that arrive queue up and go together in the next, with no one waiting for a batch
        # to fill; one that does not runs one batch at a time.
        self._leaders = 0
        self._gathering = False  # one caller at a time waits for a batch to fill
        self.max_leaders = (os.cpu_count() or 1) if inner.concurrent else 1
        self._last_call: dict[int, float] = {}  # user id -> when it last called
        self.calls = 0  # engine calls
        self.rows = 0  # frames (rows) through them
        self.largest_batch = 0
        self.most_users = 1

    def run(self, arrays: Sequence, user: int) -> list:
        arrays = list(arrays)
        if not self.batchable or not arrays or any(getattr(a, "ndim", 0) == 0 for a in arrays):
            return self._run(arrays)
        request = _Request(arrays)
        with self._cond:
            self._last_call[user] = time.monotonic()
            self._queue.append(request)
            self._cond.notify_all()
        while True:
            with self._cond:
                while not request.done and (request.taken or self._gathering or self._leaders >= self.max_leaders):
                    self._cond.wait()
                if request.done:
                    break
                self._leaders += 1  # this caller runs the next batch, with or without its own request
                self._gathering = True
                try:
                    batch = self._gather()
                finally:
                    self._gathering = False
                    self._cond.notify_all()  # the next batch may start to gather
            try:
                self._run_batch(batch)
            finally:
                with self._cond:
                    self._leaders -= 1
                    for r in batch:
                        r.done = True
                    self._cond.notify_all()
        if request.error is not None:
            raise request.error
        return request.result

    def _run(self, arrays: list) -> list:
        with self._run_lock:
            self.calls += 1
            self.rows += 1
            if not self.inner.concurrent:
                return self.inner.run(arrays)
        return self.inner.run(arrays)  # the engine takes callers side by side: only the counts needed the lock

    def _gather(self) -> list[_Request]:
        """Under the condition's lock: the requests of the next call, waiting up to the timeout for the callers
        that are active, then the oldest request and those of the same shape after it, up to max_batch rows."""
        deadline = time.monotonic() + self.batching.timeout_s
        while True:
            now = time.monotonic()
            active = sum(1 for t in self._last_call.values() if now - t < ACTIVE_WINDOW_S)
            wanted = min(self.batching.max_batch, max(active, 1))
            first = self._queue[0]
            ready = sum(r.rows for r in self._queue if r.fits(first))
            if ready >= wanted or now >= deadline:
                break
            self._cond.wait(deadline - now)
        first, batch, rows = self._queue[0], [], 0
        for r in self._queue:
            if r.fits(first) and (not batch or rows + r.rows <= self.batching.max_batch):
                batch.append(r)
                rows += r.rows
        self._queue = [r for r in self._queue if r not in batch]
        for r in batch:
            r.taken = True
        return batch

    def _run_batch(self, batch: list[_Request]) -> None:
        try:
            if len(batch) == 1:
                stacked = batch[0].arrays
            else:
                stacked = [np.concatenate(parts) for parts in zip(*(r.arrays for r in batch))]
            rows = sum(r.rows for r in batch)
            if self.inner.concurrent:
                outputs = self.inner.run(stacked)
            with self._run_lock:
                if not self.inner.concurrent:
                    outputs = self.inner.run(stacked)
                self.calls += 1
                self.rows += rows
                self.largest_batch = max(self.largest_batch, rows)
            if len(batch) == 1:
                batch[0].result = list(outputs)
                return
            if any(np.ndim(o) == 0 or np.shape(o)[0] != rows for o in outputs):
                raise ValueError(f"model {self.inner.model_path.name} returned outputs of shape "
                                 f"{[list(np.shape(o)) for o in outputs]} for a batch of {rows}; batching needs "
                                 "outputs whose first dimension is the batch (set max_batch: 1)")
            start = 0
            for r in batch:  # a copy each: streams never share a writable array
                r.result = [np.array(o[start:start + r.rows]) for o in outputs]
                start += r.rows
        except BaseException as exc:  # every caller in the batch gets it, labelled by its own node
            for r in batch:
                r.error = exc

    def forget(self, user: int) -> None:
        with self._cond:
            self._last_call.pop(user, None)
            self._cond.notify_all()


class SharedSession(Session):
    """One node's handle on a `SharedModel`: `run` through it, `close` releases this node's reference."""

    def __init__(self, pool: "SessionPool", key: Hashable, model: SharedModel):
        inner = model.inner
        super().__init__(inner.engine, inner.model_path, inner.device, inner.inputs, inner.outputs, inner.details)
        self.model = model
        self.inner = inner
        self._pool = pool
        self._key = key
        self._closed = False

    @property
    def calls(self) -> int:
        return self.model.calls

    def run(self, arrays: Sequence) -> list:
        return self.model.run(arrays, id(self))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.model.forget(id(self))
            self._pool.release(self._key)


class SessionPool:
    """Sessions by key, with how many nodes use each; `loads` counts the models actually loaded."""

    def __init__(self):
        self._lock = threading.Lock()
        self._models: dict[Hashable, tuple[SharedModel, int]] = {}
        self._loading: dict[Hashable, threading.Lock] = {}
        self.loads = 0

    def acquire(self, key: Hashable, load: Callable[[], Session],
                batching: Batching = Batching()) -> tuple[SharedSession, bool]:
        """A handle on the session for `key`, loading it with `load()` if no node holds one; (handle, whether it
        was shared rather than loaded). A failed load raises and leaves nothing behind."""
        key = (key, batching)
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # two streams opening at once load the model once; other keys load in parallel
            with self._lock:
                found = self._models.get(key)
                if found is not None:
                    self._models[key] = (found[0], found[1] + 1)
                    found[0].most_users = max(found[0].most_users, found[1] + 1)
                    return SharedSession(self, key, found[0]), True
            model = SharedModel(load(), batching)
            with self._lock:
                self._models[key] = (model, 1)
                self.loads += 1
                return SharedSession(self, key, model), False

    def release(self, key: Hashable) -> None:
        with self._lock:
            found = self._models.get(key)
            if found is None:
                return
            model, users = found
            if users > 1:
                self._models[key] = (model, users - 1)
                return
            del self._models[key]
        if model.calls and model.batchable and model.most_users > 1:
            log.info("%s: %d frames in %d calls (%.2f a call, at most %d)", model.inner.model_path.name,
                     model.rows, model.calls, model.rows / model.calls, model.largest_batch)
        model.inner.close()

    def users(self) -> dict[Hashable, int]:
        with self._lock:
            return {key: users for key, (_, users) in self._models.items()}

    def models(self) -> list[SharedModel]:
        with self._lock:
            return [model for model, _ in self._models.values()]


#: The process's pool, used by every InferenceCalculator.
SESSIONS = SessionPool()


def session_key(engine: str, path: Path, options) -> Hashable:
    """Equal for two nodes that would load the same thing: the engine, the resolved file (and its change time,
    so a model rewritten between runs is loaded afresh) and the engine's options (frozen dataclasses)."""
    resolved = Path(path).resolve()
    try:
        mtime = resolved.stat().st_mtime_ns
    except OSError:
        mtime = 0
    return engine, str(resolved), mtime, repr(options)
