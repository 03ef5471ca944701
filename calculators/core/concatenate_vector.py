from typing import Any

from pipelines import Calculator, Input, Output, register_calculator


@register_calculator
class ConcatenateVectorCalculator(Calculator):
    """Joins the IN streams' packets at a timestamp into one tuple, in stream order (MediaPipe's
    ConcatenateVectorCalculator): a list or tuple adds its items, anything else adds itself, a stream without a
    packet adds nothing. With TICK connected (the frame stream) a tuple is sent at every TICK, empty when no IN
    has a packet: what a back edge into PreviousLoopbackCalculator needs.

    Ports:
        IN (Any, one or more streams), TICK (Any, optional) -> OUT (tuple)

    Example node:
        - calculator: ConcatenateVectorCalculator
          inputs: {IN: [hand_landmarks_0, hand_landmarks_1], TICK: input_video}
          outputs: {OUT: multi_hand_landmarks}
    """

    IN = Input[Any]("IN").multiple()
    TICK = Input[Any]("TICK").optional()
    OUT = Output[tuple]("OUT")

    def process(self, ctx):
        joined: list = []
        for value in ctx.get(self.IN, []):
            if value is None:
                continue
            if isinstance(value, (list, tuple)):
                joined.extend(value)
            else:
                joined.append(value)
        if joined or ctx.has(self.TICK):
            ctx.send(self.OUT, tuple(joined))
