"""Many streams, one process: one instance of the same graph per named stream (`StreamSet`).

Each stream runs its own `GraphHandle`, so stateful nodes (trackers, smoothing, ROI loops) keep state per stream
and a stream that fails or reconnects never stops or delays the others. What can be shared is shared below the
graph: inference nodes with the same engine, model and options use one engine session for the whole process
(`calculators/inference/shared_sessions`, reference-counted).

    streams = StreamSet(lambda spec: Graph(config_for(spec)))
    streams.add(StreamSpec("cam0", "rtsp://cam0/live"))
    streams.add(StreamSpec("cam1", "clip.mp4", {"realtime": True}))
    streams.wait()
    streams.failures()  # {"cam0": "node \"source\" ...: cannot open rtsp://cam0/live"}
"""
from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .errors import GraphConfigError, PipelineError

log = logging.getLogger("framegraph.multistream")

#: Stream names end up in file names (``out/{stream}.mp4``) and URLs (``/api/streams/NAME``).
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
STREAM_FIELD = "{stream}"


class StreamError(PipelineError, ValueError):
    """A stream cannot be added or removed: a bad or duplicate name, an unknown stream."""


class StreamSetupError(StreamError, GraphConfigError):
    """The streams given on the command line or in a sources file are wrong (run-graph exits 2)."""


@dataclass(frozen=True)
class StreamSpec:
    """One stream: its name, what its source node reads, and more options of that node (``realtime: true``)."""

    name: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not NAME.match(self.name):
            raise StreamError(f"stream name {self.name!r}: use letters, digits, '_' and '-' (at most 64), "
                              "starting with a letter or digit")
        if not isinstance(self.url, str) or not self.url.strip():
            raise StreamError(f"stream '{self.name}': url must be a non-empty string, got {self.url!r}")
        if not isinstance(self.options, dict):
            raise StreamError(f"stream '{self.name}': options must be a mapping of the source node's options, "
                              f"got {self.options!r}")


def parse_source_args(values: Iterable[str]) -> list[StreamSpec]:
    """``--source URL`` (named cam0, cam1, ... by position) or ``--source NAME=URL``."""
    specs = []
    for i, text in enumerate(values):
        name, url = split_named(text)
        try:
            specs.append(StreamSpec(name or f"cam{i}", url))
        except StreamError as exc:
            raise StreamSetupError(f"--source {text}: {exc}") from None
    return _unique(specs, "--source")


def split_named(text: str) -> tuple[str | None, str]:
    """``cam=rtsp://h/x`` -> (cam, rtsp://h/x); a URL whose query has '=' is not a name (it has ':' or '/')."""
    name, sep, rest = text.partition("=")
    if sep and name and NAME.match(name):
        return name, rest
    return None, text


def load_sources_file(path: str | Path) -> list[StreamSpec]:
    """A YAML list of ``{name, url, options}`` (options: the source node's), read with the safe loader."""
    from .yaml_loader import load_yaml_file

    path = Path(path)
    try:
        data = load_yaml_file(path)
    except GraphConfigError as exc:
        raise StreamSetupError(str(exc).replace("graph file", "sources file")) from None
    if not isinstance(data, list) or not data:
        raise StreamSetupError(f"{path}: expected a list of streams, each {{name: cam0, url: rtsp://..., "
                               f"options: {{...}}}}, got {type(data).__name__}")
    specs = []
    for i, entry in enumerate(data, start=1):
        where = f"{path}:{getattr(entry, 'line', '?')}: stream {i}"
        if not isinstance(entry, dict):
            raise StreamSetupError(f"{where}: expected a mapping {{name, url, options}}, got {entry!r}")
        unknown = sorted(set(entry) - {"name", "url", "options"})
        if unknown:
            raise StreamSetupError(f"{where}: unknown key {', '.join(map(repr, unknown))}; valid: name, url, options")
        if "url" not in entry:
            raise StreamSetupError(f"{where}: 'url' is required")
        try:
            specs.append(StreamSpec(entry.get("name", f"cam{i - 1}"), entry["url"], dict(entry.get("options") or {})))
        except StreamError as exc:
            raise StreamSetupError(f"{where}: {exc}") from None
    return _unique(specs, str(path))


def _unique(specs: list[StreamSpec], where: str) -> list[StreamSpec]:
    seen = set()
    for spec in specs:
        if spec.name in seen:
            raise StreamSetupError(f"{where}: stream name '{spec.name}' is given twice")
        seen.add(spec.name)
    return specs


def stream_path(template: str, name: str, flag: str, several: bool) -> str:
    """``out/{stream}.mp4`` for stream `name`; with several streams a path without ``{stream}`` is refused (every
    stream would write the same file)."""
    if STREAM_FIELD not in template:
        if several:
            raise StreamSetupError(f"{flag} {template}: with several streams the path needs '{STREAM_FIELD}' "
                                   f"(for example out/{STREAM_FIELD}{Path(template).suffix or '.mp4'}), or every "
                                   "stream would write the same file")
        return template
    return template.replace(STREAM_FIELD, name)


def allowed(url: str, prefixes: Iterable[str]) -> bool:
    """Whether `url` starts with one of the allowed prefixes (an empty list allows everything)."""
    prefixes = list(prefixes)
    return not prefixes or any(url.startswith(p) for p in prefixes)


class _Instance:
    def __init__(self, spec: StreamSpec, handle):
        self.spec = spec
        self.handle = handle
        self.error: str | None = None
        self.settled = False
        self.removed = False


class StreamSet:
    """Named instances of one graph, started and stopped independently. `build(spec)` returns the validated
    `Graph` for a stream (its source, outputs and options set); a stream's failure is kept, never raised, so
    the others run on. Listeners are called ``(event, name, handle)`` with event "added" or "removed"."""

    def __init__(self, build: Callable[[StreamSpec], Any], trace: bool = False, max_streams: int = 64):
        self._build = build
        self._trace = trace
        self.max_streams = max_streams
        self._lock = threading.Lock()
        self._instances: dict[str, _Instance] = {}  # insertion order: the order streams were added
        self._starting: set[str] = set()  # names being built and opened by add()
        self._listeners: list[Callable[[str, str, Any], None]] = []
        self._stopping = False

    # ---------------------------------------------------------------- changing the set
    def add(self, spec: StreamSpec):
        """Build, validate and start `spec`'s graph; returns its GraphHandle. StreamError for a name in use."""
        with self._lock:
            self._check_free(spec.name)
            self._starting.add(spec.name)
        try:  # outside the lock: building and opening take a while, and the page reads the set meanwhile
            graph = self._build(spec)  # validation errors propagate: nothing has started
            handle = graph.start(trace=self._trace)
        finally:
            with self._lock:
                self._starting.discard(spec.name)
        with self._lock:
            self._instances.pop(spec.name, None)
            self._instances[spec.name] = _Instance(spec, handle)
            stopping = self._stopping
        if stopping:  # stop() came while it was opening: it stops too
            handle.stop()
        log.info("stream %s: started (%s)", spec.name, spec.url)
        self._notify("added", spec.name, handle)
        return handle

    def _check_free(self, name: str) -> None:
        if self._stopping:
            raise StreamError(f"stream '{name}': the stream set is stopping")
        old = self._instances.get(name)
        if name in self._starting or (old is not None and not (old.removed and old.handle.done)):
            raise StreamError(f"stream '{name}' exists already; remove it first")
        running = sum(1 for i in self._instances.values() if not i.removed) + len(self._starting)
        if running >= self.max_streams:
            raise StreamError(f"stream '{name}': at most {self.max_streams} streams")

    def remove(self, name: str, timeout: float = 15.0) -> None:
        """Stop stream `name` (its outputs finalized, as on Ctrl-C) without waiting; cancelled after `timeout`."""
        with self._lock:
            inst = self._instances.get(name)
            if inst is None or inst.removed:
                raise StreamError(f"no stream '{name}'; streams: {', '.join(self.names()) or '(none)'}")
            inst.removed = True
        inst.handle.stop()
        threading.Thread(target=self._reap, args=(inst, timeout), daemon=True,
                         name=f"framegraph-stream-stop-{name}").start()
        log.info("stream %s: removed", name)
        self._notify("removed", name, inst.handle)

    def _reap(self, inst: _Instance, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not inst.handle.done and time.monotonic() < deadline:
            time.sleep(0.05)
        if not inst.handle.done:
            log.warning("stream %s did not stop within %.0f s of its removal; cancelling", inst.spec.name, timeout)
            inst.handle.cancel()
        self._settle(inst)

    def add_listener(self, callback: Callable[[str, str, Any], None]) -> None:
        self._listeners.append(callback)

    def _notify(self, event: str, name: str, handle) -> None:
        for callback in list(self._listeners):
            try:
                callback(event, name, handle)
            except Exception as exc:  # a listener (the live page) must not break the set
                log.warning("stream %s: a listener failed on %s: %s", name, event, exc)

    # ---------------------------------------------------------------- reading it
    def names(self) -> list[str]:
        """The streams not removed, in the order they were added."""
        return [n for n, i in self._instances.items() if not i.removed]

    def handles(self) -> dict[str, Any]:
        with self._lock:
            return {n: i.handle for n, i in self._instances.items() if not i.removed}

    def all_handles(self) -> dict[str, Any]:
        """Every stream's handle, removed ones included (for the stats at the end)."""
        with self._lock:
            return {n: i.handle for n, i in self._instances.items()}

    def status(self, name: str) -> str:
        inst = self._instances[name]
        if not inst.handle.done:
            return "stopping" if inst.removed else "running"
        self._settle(inst)
        if inst.error is not None:
            return f"failed: {inst.error}"
        return "removed" if inst.removed else "ended"

    def describe(self) -> list[dict]:
        """Every stream not removed: name, url, options and status."""
        with self._lock:
            items = [(n, i) for n, i in self._instances.items() if not i.removed]
        return [{"name": n, "url": i.spec.url, "options": dict(i.spec.options), "status": self.status(n)}
                for n, i in items]

    def _settle(self, inst: _Instance) -> None:
        """Collect a finished stream's outcome once (handle.wait raises its error; it is kept, not raised)."""
        if inst.settled or not inst.handle.done:
            return
        try:
            inst.handle.wait(0)
        except Exception as exc:
            inst.error = _one_line(exc)
        inst.settled = True
        if inst.error is not None:
            log.warning("stream %s failed: %s", inst.spec.name, inst.error)

    # ---------------------------------------------------------------- running it
    def wait(self, timeout: float | None = None) -> bool:
        """True once every stream has finished (ended, failed or removed and stopped)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                instances = list(self._instances.values())
            for inst in instances:
                self._settle(inst)
            if all(inst.handle.done for inst in instances):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def stop(self) -> None:
        """Ask every stream to stop (sources end, outputs finalized); no new stream is accepted."""
        with self._lock:
            self._stopping = True
            handles = [i.handle for i in self._instances.values()]
        for handle in handles:
            handle.stop()

    def cancel(self) -> None:
        with self._lock:
            self._stopping = True
            handles = [i.handle for i in self._instances.values()]
        for handle in handles:
            handle.cancel()

    def failures(self) -> dict[str, str]:
        """Stream name -> what went wrong, for every finished stream that failed."""
        with self._lock:
            instances = list(self._instances.items())
        for _, inst in instances:
            self._settle(inst)
        return {n: i.error for n, i in instances if i.error is not None}

    def problems(self) -> dict[str, list[str]]:
        """Stream name -> the problems its nodes reported without failing (a truncated input)."""
        with self._lock:
            instances = list(self._instances.items())
        return {n: i.handle.problems for n, i in instances if i.handle.problems}


def _one_line(exc: BaseException) -> str:
    from .errors import CalculatorError

    if isinstance(exc, CalculatorError) and isinstance(exc.original, PipelineError):
        text = str(exc.original)
        if not text.startswith(f'node "{exc.node}"'):
            text = f'node "{exc.node}" ({exc.calculator}): {text}'
    else:
        text = str(exc) if isinstance(exc, PipelineError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())
