from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Frame, Mask

Color = tuple[int, int, int]


@register_calculator
class MaskOverlayCalculator(Calculator):
    """Tints the foreground of each frame with `color`: out = frame + (color - frame) * opacity * mask, so a
    pixel with probability 1 gets `opacity` of the colour and the background stays as it was (`invert: true`
    tints the background instead). A frame without a MASK packet, or any frame at opacity 0, passes unchanged.
    The input frame is never modified.

    Ports:
        IMAGE (Frame), MASK (Mask, the frame's size) -> IMAGE (Frame)

    Example node:
        - calculator: MaskOverlayCalculator
          inputs: {IMAGE: input_video, MASK: segmentation_mask}
          outputs: {IMAGE: output_video}
          options: {color: [0, 120, 255], opacity: 0.5}
    """

    @dataclass(frozen=True)
    class Options:
        color: Color = (0, 120, 255)
        opacity: float = 0.5
        invert: bool = False

        def __post_init__(self):
            if len(self.color) != 3 or any(not 0 <= c <= 255 for c in self.color):
                raise ValueError(f"color must be three integers 0-255 (R, G, B), got {list(self.color)}")
            if not 0.0 <= self.opacity <= 1.0:
                raise ValueError(f"opacity must be in [0, 1], got {self.opacity}")

    IMAGE = Input[Frame]("IMAGE")
    MASK = Input[Mask]("MASK").optional()
    OUT = Output[Frame]("IMAGE")

    def process(self, ctx):
        frame, mask = ctx.get(self.IMAGE), ctx.get(self.MASK)
        if frame is None:
            return
        if mask is None or self.options.opacity == 0.0:
            ctx.send(self.OUT, frame)
            return
        weight = _weight_for(mask, frame)
        if self.options.invert:
            weight = 1.0 - weight
        weight = (weight * np.float32(self.options.opacity))[:, :, None]
        image = frame.image.astype(np.float32)
        image += (np.asarray(self.options.color, np.float32) - image) * weight
        ctx.send(self.OUT, dataclasses.replace(frame, image=np.clip(np.rint(image), 0, 255).astype(np.uint8)))


def _weight_for(mask: Mask, frame: Frame) -> np.ndarray:
    """The mask's probabilities at the frame's size, clipped to [0, 1]."""
    p = mask.probability
    if p.shape != (frame.height, frame.width):
        import cv2

        p = cv2.resize(p, (frame.width, frame.height), interpolation=cv2.INTER_LINEAR)
    return np.clip(p, 0.0, 1.0)
