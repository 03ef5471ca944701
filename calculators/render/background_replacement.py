from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.paths import InputFile
from pipelines.types import Frame, Mask

from .mask_overlay import _weight_for

_MODES = ("blur", "color", "image")


@register_calculator
class BackgroundReplacementCalculator(Calculator):
    """A virtual background: keeps the person (the MASK's foreground) and replaces what is behind them with the
    frame blurred (`mode: blur`, Gaussian, `blur_kernel` pixels wide, odd), a plain `color`, or an image (`mode:
    image`: the BACKGROUND stream's frame if connected, else the `background_image` file, scaled to cover the
    frame and cropped centred). Pixels blend by the mask's probability; with `threshold` set, a pixel is
    foreground when its probability is above it (MediaPipe's selfie example uses 0.1). A frame without a MASK
    packet (nobody found) is all background.

    Ports:
        IMAGE (Frame), MASK (Mask), BACKGROUND (Frame, optional) -> IMAGE (Frame)

    Example node:
        - calculator: BackgroundReplacementCalculator
          inputs: {IMAGE: input_video, MASK: segmentation_mask}
          outputs: {IMAGE: output_video}
          options: {mode: blur, blur_kernel: 31}
    """

    @dataclass(frozen=True)
    class Options:
        mode: str = "blur"
        blur_kernel: int = 31
        color: tuple[int, int, int] = (0, 177, 64)
        background_image: InputFile = InputFile("")
        threshold: float | None = None

        def __post_init__(self):
            if self.mode not in _MODES:
                raise ValueError(f"mode must be one of {', '.join(_MODES)}, got {self.mode!r}")
            if self.blur_kernel < 1 or self.blur_kernel % 2 == 0:
                raise ValueError(f"blur_kernel must be an odd number >= 1, got {self.blur_kernel}")
            if len(self.color) != 3 or any(not 0 <= c <= 255 for c in self.color):
                raise ValueError(f"color must be three integers 0-255 (R, G, B), got {list(self.color)}")

    IMAGE = Input[Frame]("IMAGE")
    MASK = Input[Mask]("MASK").optional()
    BACKGROUND = Input[Frame]("BACKGROUND").optional()
    OUT = Output[Frame]("IMAGE")

    def open(self, ctx):
        import cv2

        self._cv2 = cv2
        self._file_background: np.ndarray | None = None
        self._fitted: dict[tuple[int, int], np.ndarray] = {}
        path = self.options.background_image
        if path:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f"background_image {path}: not an image OpenCV can read")
            self._file_background = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def process(self, ctx):
        frame = ctx.get(self.IMAGE)
        if frame is None:
            return
        mask = ctx.get(self.MASK)
        if mask is None:
            weight = np.zeros((frame.height, frame.width), np.float32)
        else:
            weight = _weight_for(mask, frame)
            if self.options.threshold is not None:
                weight = (weight > self.options.threshold).astype(np.float32)
        background = self._background(ctx, frame).astype(np.float32)
        out = background + (frame.image.astype(np.float32) - background) * weight[:, :, None]
        ctx.send(self.OUT, dataclasses.replace(frame, image=np.clip(np.rint(out), 0, 255).astype(np.uint8)))

    def _background(self, ctx, frame: Frame) -> np.ndarray:
        o, cv2 = self.options, self._cv2
        if o.mode == "blur":
            return cv2.GaussianBlur(frame.image, (o.blur_kernel, o.blur_kernel), 0)
        if o.mode == "color":
            return np.broadcast_to(np.asarray(o.color, np.uint8), frame.image.shape)
        streamed = ctx.get(self.BACKGROUND)
        if streamed is not None:
            return _cover(cv2, streamed.image, frame.width, frame.height)
        if self._file_background is None:
            raise ValueError("mode image needs a BACKGROUND stream or the background_image option")
        size = (frame.width, frame.height)
        if size not in self._fitted:
            self._fitted[size] = _cover(cv2, self._file_background, *size)
        return self._fitted[size]


def _cover(cv2, image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` scaled to cover width x height, cropped centred."""
    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    x, y = (new_w - width) // 2, (new_h - height) // 2
    return resized[y: y + height, x: x + width]
