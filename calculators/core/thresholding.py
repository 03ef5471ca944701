from dataclasses import dataclass

from pipelines import Calculator, Input, Output, register_calculator


@register_calculator
class ThresholdingCalculator(Calculator):
    """FLAG is True where FLOAT > `threshold` (strictly) (MediaPipe's ThresholdingCalculator), e.g. a landmark model's hand
    presence score; also ACCEPT (True) when above it, REJECT (False, as MediaPipe sends) when not.

    Ports:
        FLOAT (float) -> FLAG (bool), ACCEPT (bool), REJECT (bool)

    Example node:
        - calculator: ThresholdingCalculator
          inputs: {FLOAT: hand_presence_score}
          outputs: {FLAG: hand_presence}
          options: {threshold: 0.5}
    """

    @dataclass(frozen=True)
    class Options:
        threshold: float = 0.5

    FLOAT = Input[float]("FLOAT")
    FLAG = Output[bool]("FLAG")
    ACCEPT = Output[bool]("ACCEPT")
    REJECT = Output[bool]("REJECT")

    def process(self, ctx):
        value = float(ctx.get(self.FLOAT))
        accepted = value > self.options.threshold
        ctx.send(self.FLAG, accepted)
        if accepted:
            ctx.send(self.ACCEPT, True)
        else:
            ctx.send(self.REJECT, False)
