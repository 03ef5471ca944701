from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Frame, Mask

# A polynomial in (p - 0.5)^2 that approximates how uncertain a probability p is: 1 - (1 - H(p))^2 with H the
# binary entropy in bits, so 0.5 is fully uncertain and 0 or 1 certain (MediaPipe's fit).
_C1, _C2, _C3, _C4, _C5 = 5.68842, -0.748699, -57.8051, 291.309, -624.717


def smooth(previous: np.ndarray, current: np.ndarray, ratio: float) -> np.ndarray:
    """Blend towards the previous mask where the current one is unsure, by up to `ratio`."""
    x = (current - np.float32(0.5)) ** 2
    uncertainty = 1.0 - np.minimum(1.0, x * (_C1 + x * (_C2 + x * (_C3 + x * (_C4 + x * _C5)))))
    return (current + (previous - current) * (uncertainty * np.float32(ratio))).astype(np.float32)


@register_calculator
class SegmentationSmoothingCalculator(Calculator):
    """Steadies a segmentation mask over time (MediaPipe's SegmentationSmoothingCalculator): each pixel moves
    towards the previous output by up to `combine_with_previous_ratio`, the more so the closer the new
    probability is to 0.5, so confident pixels follow at once and unsure ones flicker less. The previous output is
    kept here (MediaPipe feeds it back through a loopback); a timestamp with IMAGE but no MASK (nobody found), or a
    mask of another size, starts afresh.

    Ports:
        MASK (Mask), IMAGE (Frame, optional: the frame clock) -> MASK (Mask)

    Example node:
        - calculator: SegmentationSmoothingCalculator
          inputs: {MASK: segmentation_mask, IMAGE: input_video}
          outputs: {MASK: smoothed_segmentation_mask}
          options: {combine_with_previous_ratio: 0.7}
    """

    @dataclass(frozen=True)
    class Options:
        combine_with_previous_ratio: float = 0.0

        def __post_init__(self):
            if not 0.0 <= self.combine_with_previous_ratio <= 1.0:
                raise ValueError(f"combine_with_previous_ratio must be in [0, 1], got {self.combine_with_previous_ratio}")

    MASK = Input[Mask]("MASK").optional()
    IMAGE = Input[Frame]("IMAGE").optional()
    OUT = Output[Mask]("MASK")

    def open(self, ctx):
        self._previous: np.ndarray | None = None

    def process(self, ctx):
        mask = ctx.get(self.MASK)
        if mask is None:
            self._previous = None
            return
        current = mask.probability
        if self._previous is None or self._previous.shape != current.shape:
            out = current
        else:
            out = smooth(self._previous, current, self.options.combine_with_previous_ratio)
        self._previous = out
        ctx.send(self.OUT, mask if out is current else Mask(out))
