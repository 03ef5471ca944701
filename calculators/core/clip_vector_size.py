from dataclasses import dataclass
from typing import Any

from pipelines import Calculator, Input, Output, register_calculator


@register_calculator
class ClipVectorSizeCalculator(Calculator):
    """Keeps the first `max_vec_size` items of each list or tuple (MediaPipe's ClipVectorSizeCalculator, e.g.
    ClipNormalizedRectVectorSizeCalculator): the detector may find more hands than the graph tracks. The output is
    a tuple of the same items, in order.

    Ports:
        IN (list or tuple) -> OUT (tuple)

    Example node:
        - calculator: ClipVectorSizeCalculator
          inputs: {IN: all_palm_detections}
          outputs: {OUT: palm_detections}
          options: {max_vec_size: 2}
    """

    @dataclass(frozen=True)
    class Options:
        max_vec_size: int = 1

        def __post_init__(self):
            if self.max_vec_size < 1:
                raise ValueError(f"max_vec_size must be >= 1, got {self.max_vec_size}")

    IN = Input[Any]("IN")
    OUT = Output[tuple]("OUT")

    def process(self, ctx):
        items = ctx.get(self.IN)
        if not isinstance(items, (list, tuple)):
            raise ValueError(f"IN: expected a list or tuple, got {type(items).__name__}")
        ctx.send(self.OUT, tuple(items[: self.options.max_vec_size]))
