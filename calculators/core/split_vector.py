from typing import Any

from pipelines import Calculator, Input, Output, register_calculator


@register_calculator
class SplitVectorCalculator(Calculator):
    """Sends item i of each list on the i-th OUT stream (MediaPipe's SplitVectorCalculator with one-element
    ranges, `element_only`): a graph handles up to N objects with N copies of a per-object branch. A list shorter
    than the number of OUT streams leaves the rest without a packet at that timestamp; extra items are dropped.

    Ports:
        IN (list or tuple) -> OUT (Any, one stream per position)

    Example node:
        - calculator: SplitVectorCalculator
          inputs: {IN: hand_rects}
          outputs: {OUT: [hand_rect_0, hand_rect_1]}
    """

    IN = Input[Any]("IN")
    OUT = Output[Any]("OUT").multiple()

    def process(self, ctx):
        items = ctx.get(self.IN)
        if not items:  # an empty list, or PreviousLoopbackCalculator's empty marker
            return
        if not isinstance(items, (list, tuple)):
            raise ValueError(f"IN: expected a list or tuple, got {type(items).__name__}")
        for index, item in enumerate(items):
            ctx.send(self.OUT, item, index=index)
