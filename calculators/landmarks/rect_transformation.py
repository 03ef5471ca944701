from __future__ import annotations

import math
from dataclasses import dataclass

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Frame, NormalizedRect

from .geometry import image_size, normalize_radians


@register_calculator
class RectTransformationCalculator(Calculator):
    """Grows, shifts and squares regions of interest (MediaPipe's RectTransformationCalculator), e.g. a palm box
    into the whole hand: shift by (`shift_x`, `shift_y`) of the rect's size along its own (rotated) axes, make it
    square on its long (`square_long`) or short (`square_short`) side in pixels, then scale by `scale_x`, `scale_y`.

    `rotation_degrees` turns the axes the shift follows; as in MediaPipe, the rect's own rotation is left as it
    was. Needs the image's size (IMAGE or IMAGE_SIZE) for the pixel aspect.

    Ports:
        NORM_RECT (NormalizedRect) or NORM_RECTS (tuple of NormalizedRect), IMAGE (Frame) or IMAGE_SIZE
        ((width, height)) -> NORM_RECT / NORM_RECTS (the same kind as the input)

    Example node:
        # A palm's rect to the hand's: 2.6 times larger, moved half its height towards the fingers, square.
        - calculator: RectTransformationCalculator
          inputs: {NORM_RECTS: palm_rects, IMAGE: input_video}
          outputs: {NORM_RECTS: hand_rects_from_palms}
          options: {scale_x: 2.6, scale_y: 2.6, shift_y: -0.5, square_long: true}
    """

    @dataclass(frozen=True)
    class Options:
        scale_x: float = 1.0
        scale_y: float = 1.0
        shift_x: float = 0.0
        shift_y: float = 0.0
        square_long: bool = False
        square_short: bool = False
        rotation_degrees: float | None = None

        def __post_init__(self):
            if self.square_long and self.square_short:
                raise ValueError("square_long and square_short exclude each other")

    NORM_RECT = Input[NormalizedRect]("NORM_RECT").optional()
    NORM_RECTS = Input[tuple]("NORM_RECTS").optional()
    IMAGE = Input[Frame]("IMAGE").optional()
    IMAGE_SIZE = Input[tuple]("IMAGE_SIZE").optional()
    OUT_RECT = Output[NormalizedRect]("NORM_RECT")
    OUT_RECTS = Output[tuple]("NORM_RECTS")

    def process(self, ctx):
        if not (ctx.has(self.NORM_RECT) or ctx.has(self.NORM_RECTS)):
            return
        size = image_size(ctx, self.IMAGE, self.IMAGE_SIZE)
        if size is None:
            raise ValueError(f"no IMAGE or IMAGE_SIZE packet at timestamp {ctx.timestamp}: the transformation "
                             "works in pixels and needs the image size with every rect")
        if ctx.has(self.NORM_RECT):
            ctx.send(self.OUT_RECT, self.transform(ctx.get(self.NORM_RECT), *size))
        if ctx.has(self.NORM_RECTS):
            ctx.send(self.OUT_RECTS, tuple(self.transform(r, *size) for r in ctx.get(self.NORM_RECTS)))

    def transform(self, rect: NormalizedRect, width: int, height: int) -> NormalizedRect:
        o = self.options
        w, h, rotation = rect.width, rect.height, rect.rotation
        if o.rotation_degrees is not None:
            rotation = normalize_radians(rotation + math.radians(o.rotation_degrees))
        if rotation == 0.0:
            x = rect.x_center + w * o.shift_x
            y = rect.y_center + h * o.shift_y
        else:
            c, s = math.cos(rotation), math.sin(rotation)
            x = rect.x_center + (width * w * o.shift_x * c - height * h * o.shift_y * s) / width
            y = rect.y_center + (width * w * o.shift_x * s + height * h * o.shift_y * c) / height
        if o.square_long:
            side = max(w * width, h * height)
            w, h = side / width, side / height
        elif o.square_short:
            side = min(w * width, h * height)
            w, h = side / width, side / height
        return NormalizedRect(x, y, w * o.scale_x, h * o.scale_y, rect.rotation)
