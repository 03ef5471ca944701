from dataclasses import dataclass
from typing import Any

from pipelines import Calculator, Input, Output, register_calculator


@register_calculator
class PacketThinnerCalculator(Calculator):
    """Keeps every Nth packet, or at most `max_fps` packets per second of stream time.

    Dropped timestamps still advance OUT's timestamp bound, so a join downstream never waits for them.

    Ports:
        IN (Any) -> OUT (Any)

    Example node:
        # Run the detector on every third frame; a tracker fills the frames between.
        - calculator: PacketThinnerCalculator
          inputs: {IN: input_video}
          outputs: {OUT: detector_video}
          options: {every: 3}
    """

    @dataclass(frozen=True)
    class Options:
        every: int = 1  # keep packet 0, N, 2N, ...
        max_fps: float = 0.0  # 0: no rate limit; otherwise keep a packet only if 1/max_fps s passed

        def __post_init__(self):
            if self.every < 1:
                raise ValueError(f"every must be >= 1, got {self.every}")
            if self.max_fps < 0:
                raise ValueError(f"max_fps must be >= 0, got {self.max_fps}")

    IN = Input[Any]("IN")
    OUT = Output[Any]("OUT")

    def open(self, ctx):
        self._count = 0
        self._last_kept: int | None = None
        self._period_us = int(1e6 / self.options.max_fps) if self.options.max_fps else 0

    def process(self, ctx):
        index = self._count
        self._count += 1
        if index % self.options.every:
            return
        ts = ctx.timestamp
        if self._period_us and self._last_kept is not None and ts - self._last_kept < self._period_us:
            return
        self._last_kept = ts
        ctx.send(self.OUT, ctx.get(self.IN))
