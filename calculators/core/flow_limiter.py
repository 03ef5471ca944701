from collections import deque
from dataclasses import dataclass
from typing import Any

from pipelines import Calculator, Input, Output, register_calculator


@register_calculator
class FlowLimiterCalculator(Calculator):
    """Lets at most `max_in_flight` packets into the part of the graph that ends in FINISHED; drops the rest
    (or holds up to `max_in_queue` of the newest). MediaPipe's FlowLimiterCalculator, for live sources: the
    graph works on the newest frame instead of falling further behind.

    Packets whose payload says it is not live (`payload.live is False`, as frames decoded from a file are, paced
    with `realtime` or not) always pass: a file must lose nothing, and the graph's bounded queues already pace it.
    Only cameras and network streams send live frames.
    `max_in_flight: 0` passes every packet.

    Ports:
        IMAGE (Any), FINISHED (Any, back edge) -> IMAGE (Any), ALLOW (bool: was this input let through?)

    Example node:
        - calculator: FlowLimiterCalculator
          inputs: {IMAGE: input_video, FINISHED: {stream: output_video, back_edge: true}}
          outputs: {IMAGE: throttled_input_video}
          options: {max_in_flight: 1}
    """

    @dataclass(frozen=True)
    class Options:
        max_in_flight: int = 1
        max_in_queue: int = 0

        def __post_init__(self):
            if self.max_in_flight < 0 or self.max_in_queue < 0:
                raise ValueError("max_in_flight and max_in_queue must be >= 0")

    IN = Input[Any]("IMAGE")
    FINISHED = Input[Any]("FINISHED").optional().timing()  # only when something finished counts
    OUT = Output[Any]("IMAGE")
    ALLOW = Output[bool]("ALLOW")
    # FINISHED arrives with older timestamps than IMAGE; both must be handled as they come.
    input_policy = "immediate"
    # Bounds are managed here: a held packet must not be overtaken by a bound past its timestamp.
    propagate_bounds = False

    def open(self, ctx):
        self._in_flight = 0
        self._queue: deque = deque()
        self._last_input = -1

    def process(self, ctx):
        limit = self.options.max_in_flight
        if ctx.has(self.FINISHED):
            self._in_flight = max(0, self._in_flight - 1)
            while self._queue and (limit == 0 or self._in_flight < limit):
                ts, payload = self._queue.popleft()
                self._emit(ctx, ts, payload)
        if ctx.has(self.IN):
            ts = ctx.timestamp
            self._last_input = ts
            payload = ctx.get(self.IN)
            if getattr(payload, "live", True) is False and not self._queue:
                ctx.send(self.OUT, payload)
                ctx.send(self.ALLOW, True)
            elif limit == 0 or self._in_flight < limit:
                self._emit(ctx, ts, payload)
            elif self.options.max_in_queue:
                self._queue.append((ts, ctx.get(self.IN)))
                while len(self._queue) > self.options.max_in_queue:
                    dropped_ts, _ = self._queue.popleft()
                    ctx.send(self.ALLOW, False, timestamp=dropped_ts)
            else:
                ctx.send(self.ALLOW, False, timestamp=ts)
        # Nothing earlier than the oldest held packet (or the next input) will come out any more.
        bound = self._queue[0][0] if self._queue else self._last_input + 1
        ctx.set_next_timestamp_bound(self.OUT, bound)

    def _emit(self, ctx, ts, payload):
        if self.options.max_in_flight:
            self._in_flight += 1
        ctx.send(self.OUT, payload, timestamp=ts)
        ctx.send(self.ALLOW, True, timestamp=ts)
