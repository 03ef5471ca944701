from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Frame, LetterboxPadding, NormalizedRect, Tensors

from ..landmarks.geometry import roi_to_image_matrix
from .yuv_warp import warp_yuv420p_to_rgb

_LAYOUTS = ("NHWC", "NCHW")
_BORDERS = ("zero", "replicate")


@register_calculator
class ImageToTensorCalculator(Calculator):
    """Turns a whole frame into a float32 model input, resampled as MediaPipe's CPU ImageToTensorCalculator
    does: one bilinear warp of the frame's region of interest onto the output grid, then a linear map of
    0..255 onto `float_range`.

    With `keep_aspect_ratio` the region is the frame grown to the output's aspect ratio around its centre,
    so the frame is scaled to fit, centred, and the rest is border: black pixels (`zero`, so the tensor holds
    `float_range[0]` there) or the edge pixels repeated (`replicate`). LETTERBOX_PADDING says how much of
    the output is border on each side, as fractions of the output size, for mapping detections back.

    With a NORM_RECT packet the region is that (rotated) rect instead of the frame, e.g. a hand's region from
    the last frame's landmarks; parts of it outside the frame are border. A frame without a rect uses the whole
    frame, or with `whole_frame_without_rect: false` (MediaPipe's behaviour when NORM_RECT is connected) gives
    no tensor; a zero-size (or NaN) rect never gives one. MATRIX is the 4x4 float32 matrix taking a point relative to the
    output tensor (x, y in 0..1, z scaled like x) to one relative to the frame, letterbox included.

    A frame holding yuv420p planes is warped from them and only the output grid is converted to RGB, with the
    planes' colour encoding (calculators/image/yuv_warp.py): the frame's full-size RGB is not made for this node.

    Ports:
        IMAGE (Frame), NORM_RECT (NormalizedRect, optional) -> TENSORS (Tensors: one float32 [1,H,W,3] or
        [1,3,H,W] array), LETTERBOX_PADDING (LetterboxPadding), MATRIX (4x4 float32 array)

    Example node:
        # BlazeFace short range takes the whole frame letterboxed into 128x128, RGB in [-1, 1].
        - name: face_image_to_tensor
          calculator: ImageToTensorCalculator
          inputs: {IMAGE: throttled_input_video}
          outputs: {TENSORS: input_tensors, LETTERBOX_PADDING: letterbox_padding}
          options: {output_width: 128, output_height: 128, keep_aspect_ratio: true,
                    float_range: [-1.0, 1.0], border: zero}
    """

    @dataclass(frozen=True)
    class Options:
        output_width: int = 128
        output_height: int = 128
        keep_aspect_ratio: bool = True  # False: stretch the frame over the whole output
        float_range: tuple[float, float] = (-1.0, 1.0)  # pixel 0 -> min, 255 -> max
        layout: str = "NHWC"  # or "NCHW"
        border: str = "zero"  # or "replicate" (MediaPipe's default, which its landmark graphs use)
        whole_frame_without_rect: bool = True

        def __post_init__(self):
            if self.output_width < 1 or self.output_height < 1:
                raise ValueError(f"output_width and output_height must be >= 1, "
                                 f"got {self.output_width}x{self.output_height}")
            lo, hi = self.float_range
            if not lo < hi:
                raise ValueError(f"float_range must be [min, max] with min < max, got [{lo}, {hi}]")
            if self.layout not in _LAYOUTS:
                raise ValueError(f"layout must be one of {', '.join(_LAYOUTS)}, got {self.layout!r}")
            if self.border not in _BORDERS:
                raise ValueError(f"border must be one of {', '.join(_BORDERS)}, got {self.border!r}")

    IMAGE = Input[Frame]("IMAGE")
    TENSORS = Output[Tensors]("TENSORS")
    NORM_RECT = Input[NormalizedRect]("NORM_RECT").optional()
    LETTERBOX_PADDING = Output[LetterboxPadding]("LETTERBOX_PADDING")
    MATRIX = Output[np.ndarray]("MATRIX")

    def open(self, ctx):
        import cv2

        self._cv2 = cv2
        self._border = cv2.BORDER_CONSTANT if self.options.border == "zero" else cv2.BORDER_REPLICATE
        lo, hi = (np.float32(v) for v in self.options.float_range)
        # float32 like MediaPipe's GetValueRangeTransformation, so the border lands on `lo` exactly.
        self._scale = (hi - lo) / np.float32(255.0)
        self._offset = lo
        self._geometry: dict[tuple[int, int], tuple[np.ndarray, LetterboxPadding]] = {}

    def process(self, ctx):
        frame: Frame = ctx.get(self.IMAGE)
        if frame is None:
            return
        rect = ctx.get(self.NORM_RECT)
        if rect is None and not self.options.whole_frame_without_rect:
            return
        if rect is not None and not (rect.width > 0 and rect.height > 0 and np.isfinite(
                [rect.x_center, rect.y_center, rect.rotation]).all()):
            # MediaPipe's sentinel for "no region" is a zero rect; a degenerate or NaN one (landmarks collapsed
            # to a point) fails MediaPipe's graph, here it only means no tensor for this frame.
            return
        size = (frame.height, frame.width)
        if rect is not None:
            matrix, padding, to_frame = self._warp_for(*size, rect=rect)
        else:
            if size not in self._geometry:  # frames of one source share a size; a new size is rare
                self._geometry[size] = self._warp_for(*size)
            matrix, padding, to_frame = self._geometry[size]
        out_w, out_h = self.options.output_width, self.options.output_height
        planes = frame.yuv420p_planes()
        if planes is not None:
            # Always from the planes when the frame has them (even if another branch made its RGB): the same
            # frame gives the same tensor whichever branch runs first; the full-frame RGB is never needed here.
            warped = warp_yuv420p_to_rgb(self._cv2, planes, matrix, (out_w, out_h), self._border,
                                         frame.yuv420p_encoding)
        else:
            # uint8 in, uint8 out, then scaled: the same rounding as MediaPipe's OpenCV converter.
            warped = self._cv2.warpPerspective(frame.image, matrix, (out_w, out_h), flags=self._cv2.INTER_LINEAR,
                                               borderMode=self._border, borderValue=(0, 0, 0))
        tensor = warped.astype(np.float32)
        tensor *= self._scale
        tensor += self._offset
        if self.options.layout == "NCHW":
            tensor = np.ascontiguousarray(tensor.transpose(2, 0, 1))
        ctx.send(self.TENSORS, Tensors((tensor[None],)))
        ctx.send(self.LETTERBOX_PADDING, padding)
        ctx.send(self.MATRIX, to_frame)

    def _warp_for(self, height: int, width: int, rect: NormalizedRect | None = None
                  ) -> tuple[np.ndarray, LetterboxPadding, np.ndarray]:
        """The frame-to-output projection and the padding, as MediaPipe's GetRoi + PadRoi compute them
        (in float32) and its OpenCV converter turns them into a matrix (boxPoints -> getPerspectiveTransform)."""
        cv2 = self._cv2
        out_w, out_h = self.options.output_width, self.options.output_height
        f32 = np.float32
        if rect is None:
            roi_w, roi_h, angle = f32(width), f32(height), 0.0
            centre = (float(f32(0.5) * f32(width)), float(f32(0.5) * f32(height)))
        else:
            roi_w, roi_h, angle = f32(rect.width) * f32(width), f32(rect.height) * f32(height), rect.rotation
            centre = (float(f32(rect.x_center) * f32(width)), float(f32(rect.y_center) * f32(height)))
        horizontal = vertical = f32(0.0)
        if self.options.keep_aspect_ratio:
            tensor_aspect = f32(out_h) / f32(out_w)
            roi_aspect = roi_h / roi_w
            if tensor_aspect > roi_aspect:
                vertical = (f32(1.0) - roi_aspect / tensor_aspect) / f32(2.0)
                roi_h = roi_w * tensor_aspect
            else:
                horizontal = (f32(1.0) - tensor_aspect / roi_aspect) / f32(2.0)
                roi_w = roi_h / tensor_aspect
        # boxPoints order: bottom-left, top-left, top-right, bottom-right; mapped onto the output's corners
        # (corners, not pixel centres: MediaPipe's convention, which differs from cv2.resize by half a pixel).
        src = cv2.boxPoints((centre, (float(roi_w), float(roi_h)), float(angle * 180.0 / np.pi)))
        dst = np.array([[0, out_h], [0, 0], [out_w, 0], [out_w, out_h]], np.float32)
        matrix = cv2.getPerspectiveTransform(src, dst)
        h, v = float(horizontal), float(vertical)
        padded = NormalizedRect(centre[0] / width, centre[1] / height, float(roi_w) / width, float(roi_h) / height,
                                angle)
        return matrix, LetterboxPadding(left=h, top=v, right=h, bottom=v), roi_to_image_matrix(padded, width, height)
