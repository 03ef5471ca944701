from dataclasses import dataclass
from typing import Any

from pipelines import Calculator, Input, Output, register_calculator


@register_calculator
class CollectionHasMinSizeCalculator(Calculator):
    """True when a list holds at least `min_size` items (MediaPipe's CollectionHasMinSizeCalculator, e.g.
    NormalizedRectVectorHasMinSizeCalculator): "enough hands are tracked, skip the detector". PreviousLoopback's
    empty marker counts as an empty list.

    Ports:
        ITERABLE (list or tuple) -> OUT (bool)

    Example node:
        - calculator: CollectionHasMinSizeCalculator
          inputs: {ITERABLE: prev_hand_rects_from_landmarks}
          outputs: {OUT: prev_has_enough_hands}
          options: {min_size: 2}
    """

    @dataclass(frozen=True)
    class Options:
        min_size: int = 1

        def __post_init__(self):
            if self.min_size < 0:
                raise ValueError(f"min_size must be >= 0, got {self.min_size}")

    ITERABLE = Input[Any]("ITERABLE")
    OUT = Output[bool]("OUT")

    def process(self, ctx):
        items = ctx.get(self.ITERABLE)
        size = len(items) if isinstance(items, (list, tuple)) else 0
        ctx.send(self.OUT, size >= self.options.min_size)
