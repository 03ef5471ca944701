"""MaskPngCalculator: one 8-bit PNG mask per frame, the source's size."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines import Calculator, Input, register_calculator
from pipelines.errors import OutputWriteError
from pipelines.types import Frame, Mask


@register_calculator
class MaskPngCalculator(Calculator):
    """Writes `folder`/frame_000000.png, ... : each frame's mask as 8-bit grey (probability x 255, rounded), the
    frame's size, numbered by the frame's index. A frame without a MASK packet (nobody found) gets an all-black
    PNG, so there is one file per frame.

    Ports:
        MASK (Mask, optional), IMAGE (Frame: size and frame number) -> (sink, no outputs)

    Example node:
        - calculator: MaskPngCalculator
          name: mask_writer
          inputs: {MASK: segmentation_mask, IMAGE: image}
          options: {folder: masks}
    """

    @dataclass(frozen=True)
    class Options:
        folder: str = "masks"

        def __post_init__(self):
            if not str(self.folder).strip():
                raise ValueError("folder must name the output folder, e.g. out/masks; got ''")

    MASK = Input[Mask]("MASK").optional()
    IMAGE = Input[Frame]("IMAGE")

    def open(self, ctx):
        import cv2

        self._cv2 = cv2
        self._folder = Path(self.options.folder)
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputWriteError(f"cannot create {self._folder}: {exc.strerror or exc}") from exc

    def process(self, ctx):
        frame, mask = ctx.get(self.IMAGE), ctx.get(self.MASK)
        if frame is None:
            return
        if mask is None:
            grey = np.zeros((frame.height, frame.width), np.uint8)
        else:
            p = mask.probability
            if p.shape != (frame.height, frame.width):
                p = self._cv2.resize(p, (frame.width, frame.height), interpolation=self._cv2.INTER_LINEAR)
            grey = np.clip(np.rint(p * 255.0), 0, 255).astype(np.uint8)
        path = self._folder / f"frame_{frame.index:06d}.png"
        if not self._cv2.imwrite(str(path), grey):
            raise OutputWriteError(f"cannot write {path}")
