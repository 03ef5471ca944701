"""Network streams for VideoSourceCalculator that survive: reconnect with backoff, a read timeout, one clock.

rtsp(s)://, http(s):// (MJPEG, progressive, HLS), udp://, srt:// ... go through PyAV (FFmpeg). The connection
lives on the capture thread (`LatestFrameReader`), never on the graph's: connecting, waiting out a backoff and a
stalled read block only that thread, and the graph keeps draining. A stream that stalls without closing is cut
by FFmpeg's interrupt callback (PyAV's read timeout), which every FFmpeg network protocol polls while it waits.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from fractions import Fraction

from pipelines import SourceOpenError

from ._live_capture import Item, LatestFrameReader, Pacer, ffmpeg_reason

_MAX_JUMP_US = 10_000_000  # a pts jump further than this (or backwards) is spliced on, not waited for
_rng = random.Random()


@dataclass(frozen=True)
class ReconnectPolicy:
    """When and how often a lost or refused stream is tried again: exponential backoff from `initial_delay_s`,
    doubling up to `max_delay_s`, each delay scaled by a random factor in [1 - jitter, 1 + jitter] so many
    clients of one restarted server do not all knock at once. `max_attempts` consecutive failed connections
    end the stream with an error; 0 tries forever."""

    enabled: bool = True
    initial_delay_s: float = 0.5
    max_delay_s: float = 10.0
    jitter: float = 0.2
    max_attempts: int = 0

    def delay(self, attempt: int, rng: random.Random = _rng) -> float:
        """The wait before connection attempt `attempt` (2 is the first retry)."""
        base = min(self.max_delay_s, self.initial_delay_s * 2 ** max(0, attempt - 2))
        return max(0.0, base * (1 + rng.uniform(-self.jitter, self.jitter)))

    def gives_up_after(self, failures: int) -> bool:
        return not self.enabled or (self.max_attempts > 0 and failures >= self.max_attempts)


class _Lost(Exception):
    """The connection failed or ended; the reason, in words."""


class NetworkStream:
    """The capture thread's side of one URL: `read(halted)` returns the next frame, reconnecting as needed;
    `status` says what it is doing in a few words (for the stats and the live page)."""

    def __init__(self, url: str, node: str, policy: ReconnectPolicy, read_timeout_s: float,
                 options: dict[str, str], logger: logging.Logger):
        self.url, self.policy, self.read_timeout_s, self.log = url, policy, read_timeout_s, logger
        self.label = f"source '{node}' ({url})"  # log lines; errors get the node from CalculatorError
        self.name = f"video source '{url}'"
        # TCP for RTSP: UDP loses packets on busy networks and shows up as smeared frames, not as errors. Half a
        # second of probing finds a camera's video (FFmpeg's default of 5 s took 2 s per reconnect over RTSP).
        defaults = {"analyzeduration": "500000"}
        if url.lower().startswith("rtsp"):
            defaults["rtsp_transport"] = "tcp"
        self.options = defaults | dict(options)
        self.status = "connecting"
        self.fps = 0.0
        self._container = self._packets = None
        self._failures = 0  # consecutive failed attempts; 0 while streaming
        self._lost_at: float | None = None
        self._index = 0
        self._t0: int | None = None  # monotonic ns of the first frame: the live clock's zero
        self._last_ts: int | None = None
        self._lock = threading.Lock()  # close() may race the capture thread's own close on stop

    # ------------------------------------------------------------------ the capture thread

    def read(self, halted: threading.Event) -> Item | None:
        try:
            return self._read(halted)
        finally:
            if halted.is_set():  # the thread closes its own connection: stop() may not wait for a stalled read
                self._close()

    def _read(self, halted: threading.Event) -> Item | None:
        while not halted.is_set():
            if self._container is None and not self._connect(halted):
                return None
            try:
                item = self._next_frame(halted)
            except _Lost as lost:
                self._close()
                if not self._retry(f"connection lost: {lost}", halted):
                    return None
                continue
            if item is None:  # a stream of known length (a file over HTTP) reached its end
                self.status = "ended"
                return None
            return item
        return None

    def _connect(self, halted: threading.Event) -> bool:
        """Open the URL, retrying per the policy; False when halted. Raises when the policy gives up."""
        import av

        while not halted.is_set():
            try:
                container = av.open(self.url, options=self.options, timeout=(self.read_timeout_s,
                                                                             self.read_timeout_s))
            except av.ProtocolNotFoundError as exc:  # no retry can help: this FFmpeg build lacks the protocol
                scheme = self.url.split("://", 1)[0]
                raise SourceOpenError(f"{self.name}: this FFmpeg (PyAV {av.__version__}) cannot read {scheme}:// "
                                      "streams (protocol not found); serve the stream over rtsp:// or http(s)://, "
                                      "or install a PyAV built with it") from exc
            except (av.FFmpegError, OSError) as exc:
                reason = _reason(exc, self.read_timeout_s)
                if not self._retry(f"could not connect: {reason}", halted):
                    return False
                continue
            if not container.streams.video:
                container.close()
                raise SourceOpenError(f"{self.name}: the stream has no video")
            self._adopt(container)
            return True
        return False

    def _adopt(self, container) -> None:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"  # frame threading would hold back several frames: latency on a live feed
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else self.fps
        self._step = round(1e6 / float(rate)) if rate else 1
        self._time_base, self._codec = stream.time_base, stream.codec_context
        # Known length (a file served over HTTP, an HLS playlist that ends): its end is the end, not a loss.
        self._finite = bool(container.duration) and container.format.name not in ("rtsp", "sdp", "mpjpeg")
        with self._lock:
            self._container, self._packets = container, container.demux(stream)
        self._offset: int | None = None
        self._pending: list = []
        # A file over HTTP would otherwise decode as fast as the network allows and the reader drop most of it. A
        # live stream is paced by its sender; pacing it again would turn the burst a server sends on connecting
        # (what it buffered meanwhile) into latency for good.
        self._pacer = Pacer(max_late_s=0.2, max_early_s=1.0) if self._finite else None
        self._connected = True  # and no frame yet: until one decodes, a failure still counts against the policy
        self.status = "connected, waiting for a picture"

    def _next_frame(self, halted: threading.Event) -> Item | None:
        import av

        while not self._pending:
            try:
                packet = next(self._packets, None)
            except av.FFmpegError as exc:
                raise _Lost(_reason(exc, self.read_timeout_s)) from exc
            if packet is None or packet.size == 0:
                if self._finite:
                    return None
                raise _Lost("the stream ended (the server closed it)")
            try:
                self._pending = list(self._codec.decode(packet))
            except av.FFmpegError:  # one damaged packet on a live feed: the next keyframe repairs the picture
                continue
        frame = self._pending.pop(0)
        if self._connected:
            self._connected = False
            self._recovered()
        ts = self._timestamp(frame)
        if self._pacer is not None and not self._pacer.wait(ts, halted.is_set):
            return None
        index, self._index = self._index, self._index + 1
        return (lambda frame=frame: frame.to_ndarray(format="rgb24")), ts, index

    def _recovered(self) -> None:
        if self._lost_at is not None:
            gap = time.monotonic() - self._lost_at
            self.log.warning("%s: reconnected after %.1f s (attempt %d)", self.label, gap, self._failures + 1)
        # Only a picture resets the count: a server that accepts and then drops every client still gives up.
        self._failures, self._lost_at = 0, None
        self.status = "streaming"

    def _timestamp(self, frame) -> int:
        """Microseconds on one live clock: 0 at the first frame; each connection starts at the wall-clock time
        it came back (so the gap shows, and nothing ever goes back), then follows the stream's own pts."""
        now = time.monotonic_ns()
        if self._t0 is None:
            self._t0 = now
        wall = (now - self._t0) // 1000
        last = self._last_ts
        floor = 0 if last is None else last + 1
        if frame.pts is None:
            ts = max(floor, wall)
        else:
            pts_us = round(Fraction(frame.pts) * self._time_base * 1_000_000)
            if self._offset is None:
                self._offset = max(floor, wall) - pts_us
            ts = pts_us + self._offset
            # Streams wrap (MPEG-TS after 26.5 h) and jump when a camera restarts: splice, do not stall.
            if last is not None and not last < ts <= last + _MAX_JUMP_US:
                self._offset += last + self._step - ts
                ts = last + self._step
        self._last_ts = ts
        return ts

    def _retry(self, what: str, halted: threading.Event) -> bool:
        """Log the failure, wait out the backoff; False if halted meanwhile. Raises when the policy gives up."""
        self._failures += 1
        if self._lost_at is None:
            self._lost_at = time.monotonic()
        if self.policy.gives_up_after(self._failures):
            self.status = f"failed: {what}"
            tries = ("reconnect is off" if not self.policy.enabled
                     else f"gave up after {self._failures} attempt{'s' * (self._failures > 1)}")
            raise SourceOpenError(f"{self.name}: {what} ({tries})")
        attempt = self._failures + 1
        delay = self.policy.delay(attempt)
        self.log.warning("%s: %s; retrying in %.1f s (attempt %d)", self.label, what, delay, attempt)
        self.status = f"reconnecting in {delay:.1f} s (attempt {attempt})"
        if halted.wait(delay):
            return False
        self.status = f"connecting (attempt {attempt})"
        return True

    def _close(self) -> None:
        with self._lock:
            container, self._container, self._packets = self._container, None, None
        if container is not None:
            try:
                container.close()
            except Exception:  # closing a broken connection can fail; it is being dropped anyway
                pass

    def release(self) -> None:
        self._close()


def _reason(exc: BaseException, read_timeout_s: float) -> str:
    import av

    if isinstance(exc, av.ExitError):  # PyAV's interrupt callback cut a read that waited too long
        return f"no data for {read_timeout_s:g} s (read timeout)"
    return ffmpeg_reason(exc)


def open_network_stream(url: str, node: str, policy: ReconnectPolicy, read_timeout_s: float,
                        options: dict[str, str], logger: logging.Logger) -> tuple[LatestFrameReader, NetworkStream]:
    """A started-later reader for `url`; connecting happens on its thread, so this never blocks."""
    stream = NetworkStream(url, node, policy, read_timeout_s, options, logger)
    return LatestFrameReader(stream.label, stream.read, stream.release), stream
