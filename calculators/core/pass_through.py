from typing import Any

from pipelines import Calculator, Input, Output, register_calculator


@register_calculator
class PassThroughCalculator(Calculator):
    """Forwards every packet unchanged, at its own timestamp.

    Ports:
        IN (Any) -> OUT (Any)

    Example node:
        - calculator: PassThroughCalculator
          inputs: {IN: input_video}
          outputs: {OUT: same_video}
    """

    IN = Input[Any]("IN")
    OUT = Output[Any]("OUT")

    def process(self, ctx):
        ctx.send(self.OUT, ctx.get(self.IN))
