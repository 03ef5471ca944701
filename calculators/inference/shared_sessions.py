"""One engine session per (engine, model file, engine options) for the whole process, reference-counted.

Several instances of a graph in one process (`pipelines.multistream`: one per camera) each open their own
InferenceCalculator; loading the model once per stream would cost its memory and load time once per stream. They
share one session instead: the first `acquire` loads it, later ones get the same object, the last `release`
closes it. Calls are serialized by a lock per session (engines promise one caller at a time), so sharing is safe
whichever engine runs it; the nodes of one stream still overlap with the others' decode, drawing and encoding.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Hashable, Sequence

from pipelines.engines import Session


class SharedSession(Session):
    """A session used by several nodes: `run` under a lock, `close` releases this user's reference."""

    def __init__(self, pool: "SessionPool", key: Hashable, inner: Session):
        super().__init__(inner.engine, inner.model_path, inner.device, inner.inputs, inner.outputs, inner.details)
        self.inner = inner
        self._pool = pool
        self._key = key
        self._lock = threading.Lock()
        self.calls = 0

    def run(self, arrays: Sequence) -> list:
        with self._lock:
            self.calls += 1
            return self.inner.run(arrays)

    def close(self) -> None:
        self._pool.release(self._key)


class SessionPool:
    """Sessions by key, with how many nodes use each; `loads` counts the models actually loaded."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sessions: dict[Hashable, tuple[SharedSession, int]] = {}
        self._loading: dict[Hashable, threading.Lock] = {}
        self.loads = 0

    def acquire(self, key: Hashable, load: Callable[[], Session]) -> tuple[SharedSession, bool]:
        """The session for `key`, loading it with `load()` if no node holds one; (session, whether it was
        shared rather than loaded). A failed load raises and leaves nothing behind."""
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # two streams opening at once load the model once; other keys load in parallel
            with self._lock:
                found = self._sessions.get(key)
                if found is not None:
                    self._sessions[key] = (found[0], found[1] + 1)
                    return found[0], True
            inner = load()
            with self._lock:
                shared = SharedSession(self, key, inner)
                self._sessions[key] = (shared, 1)
                self.loads += 1
                return shared, False

    def release(self, key: Hashable) -> None:
        with self._lock:
            found = self._sessions.get(key)
            if found is None:
                return
            session, users = found
            if users > 1:
                self._sessions[key] = (session, users - 1)
                return
            del self._sessions[key]
        session.inner.close()

    def users(self) -> dict[Hashable, int]:
        with self._lock:
            return {key: users for key, (_, users) in self._sessions.items()}


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
