"""Live capture for VideoSourceCalculator: a reader thread that keeps only the newest frame, and pacing.

A camera or network stream produces frames whether or not the graph keeps up; queueing them would make the
output fall further and further behind. The reader thread overwrites an unread frame with the next one, and
the expensive RGB conversion runs only for the frame the graph actually takes.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable

from pipelines import PipelineError, SourceOpenError

log = logging.getLogger("framegraph.io.video_source")

# (image factory, timestamp in microseconds, frame index in the source)
Item = tuple[Callable[[], object], int, int]


class LatestFrameReader:
    """Runs `read(halted)` on a daemon thread; `take()` returns the newest unread item. `read` returns None at
    the end of the stream; what it raises is kept in `error` for the graph thread to raise."""

    def __init__(self, name: str, read: Callable[[threading.Event], Item | None], release: Callable[[], None]):
        self.name = name
        self.error: BaseException | None = None
        self.ended = False
        self.read_count = 0
        self.dropped = 0
        self._read, self._release = read, release
        self._item: Item | None = None
        self._cond = threading.Condition()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"framegraph-capture ({name})", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._halt.is_set():
                item = self._read(self._halt)
                if item is None:
                    break
                with self._cond:
                    self.read_count += 1
                    self.dropped += self._item is not None
                    self._item = item
                    self._cond.notify_all()
        except BaseException as exc:  # handed to the graph thread: a capture thread never fails silently
            self.error = exc if isinstance(exc, PipelineError) else SourceOpenError(
                f"{self.name}: capture failed: {type(exc).__name__}: {exc}")
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def take(self, timeout: float) -> Item | None:
        with self._cond:
            if self._item is None and not self.ended:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def stop(self, timeout: float = 3.0) -> None:
        self._halt.set()
        if self._thread.ident is not None:
            self._thread.join(timeout)
        if self._thread.is_alive():
            # Releasing a capture another thread is still blocked in can crash the decoder; leak it instead.
            log.warning("%s: the capture thread did not stop within %.0f s; leaving it to exit on its own",
                        self.name, timeout)
            return
        if self.dropped:
            log.info("%s: %d of %d frames dropped (the graph was slower than the source)",
                     self.name, self.dropped, self.read_count)
        self._release()


class Pacer:
    """Holds a stream to wall-clock speed. Re-anchors instead of bursting to catch up after a stall (late by
    more than `max_late_s`) or sleeping through a timestamp jump (early by more than `max_early_s`)."""

    def __init__(self, max_late_s: float = 0.5, max_early_s: float = float("inf")):
        self.max_late_s, self.max_early_s = max_late_s, max_early_s
        self._t0: float | None = None
        self._ts0 = 0

    def wait(self, ts_us: int, stopping: Callable[[], bool]) -> bool:
        """Sleep until `ts_us` is due; False if `stopping()` became true meanwhile."""
        now = time.monotonic()
        due = None if self._t0 is None else self._t0 + (ts_us - self._ts0) / 1e6
        if due is None or not -self.max_late_s <= due - now <= self.max_early_s:
            self._t0, self._ts0 = now, ts_us
            return not stopping()
        while (left := due - time.monotonic()) > 0:
            if stopping():
                return False
            time.sleep(min(left, 0.02))
        return True


def open_camera(index: int, width: int, height: int, fps: float) -> tuple[LatestFrameReader, float]:
    import cv2

    cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        cap.release()
        raise SourceOpenError(f"camera {index} could not be opened: no such device or it is busy "
                              "(hint: try another index, or close the program using it)")
    for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, width), (cv2.CAP_PROP_FRAME_HEIGHT, height),
                        (cv2.CAP_PROP_FPS, fps)):
        if value:
            cap.set(prop, value)
    name, t0, counter = f"camera {index}", time.monotonic_ns(), itertools.count()

    def read(halted: threading.Event) -> Item | None:
        failing_since = None
        while not halted.is_set():
            ok, bgr = cap.read()
            if ok and bgr is not None:
                ts = (time.monotonic_ns() - t0) // 1000
                return (lambda bgr=bgr: cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)), ts, next(counter)
            failing_since = failing_since or time.monotonic()
            if time.monotonic() - failing_since > 2.0:
                raise SourceOpenError(f"{name} stopped delivering frames (reads failed for 2 s): unplugged or "
                                      "taken by another program")
            time.sleep(0.05)
        return None

    return LatestFrameReader(name, read, cap.release), float(cap.get(cv2.CAP_PROP_FPS) or 0.0)


def ffmpeg_reason(exc: BaseException) -> str:
    """An FFmpeg error's own words ("Invalid data found when processing input"), without the errno."""
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
