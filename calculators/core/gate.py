from dataclasses import dataclass
from typing import Any

from pipelines import Calculator, Input, Output, register_calculator


@register_calculator
class GateCalculator(Calculator):
    """Passes its IN packets through at a timestamp only when allowed (MediaPipe's GateCalculator): ALLOW true,
    or DISALLOW false. A timestamp where the ALLOW (or DISALLOW) stream has no packet counts as allowed only with
    `empty_packets_as_allow`. Connect one of ALLOW and DISALLOW; with neither, `empty_packets_as_allow` decides
    for every packet. Gated packets are dropped; the outputs' timestamp bounds still move on, so joins downstream
    never wait for them. IN and OUT take several streams, paired by position.

    Ports:
        IN (Any, one or more streams), ALLOW (bool) or DISALLOW (bool) -> OUT (Any, one per IN stream)

    Example node:
        # The palm detector runs only on frames where fewer hands are tracked than wanted.
        - calculator: GateCalculator
          inputs: {IN: [input_video], DISALLOW: enough_hands_tracked}
          outputs: {OUT: [palm_detection_video]}
          options: {empty_packets_as_allow: true}
    """

    @dataclass(frozen=True)
    class Options:
        empty_packets_as_allow: bool = False

    IN = Input[Any]("IN").multiple()
    ALLOW = Input[bool]("ALLOW").optional()
    DISALLOW = Input[bool]("DISALLOW").optional()
    OUT = Output[Any]("OUT").multiple()

    def process(self, ctx):
        if ctx.has(self.ALLOW):
            allow = bool(ctx.get(self.ALLOW))
        elif ctx.has(self.DISALLOW):
            allow = not bool(ctx.get(self.DISALLOW))
        else:
            allow = self.options.empty_packets_as_allow
        if not allow:
            return
        for index, value in enumerate(ctx.get(self.IN, [])):
            if value is not None:
                ctx.send(self.OUT, value, index=index)
