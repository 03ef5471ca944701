from dataclasses import dataclass
from typing import Any, Callable

from pipelines import Calculator, Input, register_calculator
from pipelines.packet import Packet


@register_calculator
class CallbackSink(Calculator):
    """Calls a Python function with every packet: the bridge from a graph to the caller's code.

    The callable comes from a side input (graphs are data only, so YAML cannot name a function).

    Ports:
        IN (Any)

    Example node:
        - calculator: CallbackSink
          inputs: {IN: detections}
          options: {callback: on_detections}   # graph.start(side_inputs={"on_detections": fn})
    """

    @dataclass(frozen=True)
    class Options:
        callback: str = "callback"  # name of the side input holding the callable

    IN = Input[Any]("IN")

    def open(self, ctx):
        fn = ctx.side_inputs.get(self.options.callback)
        if not callable(fn):
            raise ValueError(f"side input '{self.options.callback}' must be a callable, got {fn!r}; "
                             f"pass it with graph.start(side_inputs={{'{self.options.callback}': fn}})")
        self._fn: Callable[[Packet], Any] = fn

    def process(self, ctx):
        self._fn(Packet(ctx.timestamp, ctx.get(self.IN)))
