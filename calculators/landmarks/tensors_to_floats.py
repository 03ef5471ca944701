from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Tensors

from .activation import sigmoid

_ACTIVATIONS = ("none", "sigmoid")


@register_calculator
class TensorsToFloatsCalculator(Calculator):
    """The values of one tensor as floats (MediaPipe's TensorsToFloatsCalculator), e.g. a landmark model's
    presence score: FLOAT is the first value, FLOATS all of them; `activation: sigmoid` maps logits to 0..1.

    Ports:
        TENSORS (Tensors) -> FLOAT (float), FLOATS (tuple of float)

    Example node:
        - calculator: TensorsToFloatsCalculator
          inputs: {TENSORS: hand_landmark_tensors}
          outputs: {FLOAT: hand_presence_score}
          options: {tensor_index: 1}
    """

    @dataclass(frozen=True)
    class Options:
        tensor_index: int = 0
        activation: str = "none"

        def __post_init__(self):
            if self.activation not in _ACTIVATIONS:
                raise ValueError(f"activation must be one of {', '.join(_ACTIVATIONS)}, got {self.activation!r}")

    TENSORS = Input[Tensors]("TENSORS")
    FLOAT = Output[float]("FLOAT")
    FLOATS = Output[tuple]("FLOATS")

    def process(self, ctx):
        tensors = ctx.get(self.TENSORS)
        i = self.options.tensor_index
        if i >= len(tensors):
            raise ValueError(f"TENSORS: tensor_index {i}, but the packet holds {len(tensors)} tensors")
        values = np.asarray(tensors[i], np.float32).reshape(-1)
        if values.size == 0:
            raise ValueError(f"TENSORS: tensor {i} is empty")
        if self.options.activation == "sigmoid":
            values = sigmoid(values)
        ctx.send(self.FLOAT, float(values[0]))
        ctx.send(self.FLOATS, tuple(float(v) for v in values))
