from typing import Any

from pipelines import Calculator, Input, Output, register_calculator


@register_calculator
class PacketClonerCalculator(Calculator):
    """Re-emits the latest packet seen on IN at the timestamp of every TICK (MediaPipe's PacketClonerCalculator).

    Ports:
        IN (Any), TICK (Any) -> OUT (Any)

    Example node:
        # Pair every frame with the most recent detections, even when detection runs less often.
        - calculator: PacketClonerCalculator
          inputs: {IN: detections, TICK: input_video}
          outputs: {OUT: detections_every_frame}
    """

    IN = Input[Any]("IN")
    TICK = Input[Any]("TICK")
    OUT = Output[Any]("OUT")

    def open(self, ctx):
        self._latest = None

    def process(self, ctx):
        if ctx.has(self.IN):
            self._latest = ctx.get(self.IN)
        if ctx.has(self.TICK) and self._latest is not None:
            ctx.send(self.OUT, self._latest)
