from collections import deque
from dataclasses import dataclass
from typing import Any

from pipelines import Calculator, Input, Output, register_calculator


class _Empty:
    """What PREV_LOOP carries where there is no previous loop value: falsy, prints as <empty>."""

    __slots__ = ()

    def __bool__(self):
        return False

    def __repr__(self):
        return "<empty>"


EMPTY = _Empty()


@register_calculator
class PreviousLoopbackCalculator(Calculator):
    """Closes a loop over time (MediaPipe's PreviousLoopbackCalculator): at each MAIN timestamp, PREV_LOOP carries
    the LOOP packet of the previous MAIN timestamp, e.g. the hand rects computed from the last frame's landmarks.

    LOOP is the back edge (`{stream: ..., back_edge: true}`) and must carry a packet at every MAIN timestamp (an
    empty list where nothing was found): this runtime shows a calculator packets, not bounds, so the packet is how
    the node learns the previous frame is done. A LOOP packet at a later timestamp also settles the earlier ones
    that never came. The first MAIN timestamp, and any whose previous one had no LOOP packet, get `EMPTY` (falsy)
    on PREV_LOOP, or `empty_value` when set (e.g. `[]`). A MAIN packet waits here until its predecessor's LOOP
    value is known, so PREV_LOOP keeps MAIN's timestamps, in order. When MAIN ends the node stays open until
    those values have come (`awaits_back_edges`), so the last frames are tracked like the others.

    Ports:
        MAIN (Any), LOOP (Any, back edge) -> PREV_LOOP (Any)

    Example node:
        - calculator: PreviousLoopbackCalculator
          inputs: {MAIN: input_video, LOOP: {stream: hand_rects_from_landmarks, back_edge: true}}
          outputs: {PREV_LOOP: prev_hand_rects_from_landmarks}
          options: {empty_value: []}
    """

    @dataclass(frozen=True)
    class Options:
        empty_value: Any = None  # None: the EMPTY marker

    MAIN = Input[Any]("MAIN")
    LOOP = Input[Any]("LOOP")
    PREV_LOOP = Output[Any]("PREV_LOOP")
    input_policy = "immediate"
    propagate_bounds = False  # a held MAIN timestamp must not be overtaken by a bound

    def open(self, ctx):
        self._empty = EMPTY if self.options.empty_value is None else self.options.empty_value
        self._waiting: deque[tuple[int, int]] = deque()  # (MAIN timestamp, the previous MAIN timestamp)
        self._last_main: int | None = None
        self._loop: dict[int, Any] = {}  # LOOP values that a MAIN timestamp may still ask for, by timestamp
        self._loop_seen = -1  # the latest LOOP timestamp received

    def process(self, ctx):
        ts = ctx.timestamp
        if ctx.has(self.LOOP):
            self._loop_seen = max(self._loop_seen, ts)
            self._loop[ts] = ctx.get(self.LOOP)
        if ctx.has(self.MAIN):
            self._waiting.append((ts, -1 if self._last_main is None else self._last_main))
            self._last_main = ts
        self._release(ctx)

    def _release(self, ctx):
        while self._waiting:
            ts, prev = self._waiting[0]
            if prev >= 0 and prev > self._loop_seen:
                break  # the previous timestamp's LOOP packet may still come
            self._waiting.popleft()
            ctx.send(self.PREV_LOOP, self._loop.pop(prev, self._empty), timestamp=ts)
        # Only the LOOP values at or after the oldest predecessor still awaited can be asked for again.
        keep = self._waiting[0][1] if self._waiting else (self._last_main if self._last_main is not None else -1)
        for old in [t for t in self._loop if t < keep]:
            del self._loop[old]
        if self._waiting:
            ctx.set_next_timestamp_bound(self.PREV_LOOP, self._waiting[0][0])
        elif self._last_main is not None:
            ctx.set_next_timestamp_bound(self.PREV_LOOP, self._last_main + 1)

    def awaits_back_edges(self) -> bool:
        # MAIN has ended: stay open while a held timestamp's predecessor may still send its LOOP packet.
        return any(prev >= 0 and prev > self._loop_seen for _, prev in self._waiting)

    def close(self, ctx):
        self._loop_seen = 1 << 62  # no more LOOP packets: whatever is still awaited was never sent
        self._release(ctx)
