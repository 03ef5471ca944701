from __future__ import annotations

import math
from dataclasses import dataclass

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Detections, Frame, NormalizedRect

from .geometry import image_size, rotation_from_points

_MODES = ("bounding_box", "keypoints")


@register_calculator
class DetectionsToRectsCalculator(Calculator):
    """Turns detections into regions of interest (MediaPipe's DetectionsToRectsCalculator): each detection's box
    (`conversion_mode: bounding_box`) or the box around its keypoints (`keypoints`) becomes a NormalizedRect.

    With `rotation_vector_start_keypoint_index` and `..._end_...` the rect is turned so that the vector between
    those keypoints, measured in pixels, points at `rotation_vector_target_angle_degrees` (counter-clockwise from
    the x axis as seen; 90 = up): for a palm, wrist to middle finger upright. Rotation needs the image's size:
    connect IMAGE (a Frame) or IMAGE_SIZE ((width, height)).

    NORM_RECTS carries a rect per detection; NORM_RECT the first detection's. Empty detections give no packet,
    or with `output_zero_rect_for_empty_detections` a zero rect (NORM_RECT) and a list of one (NORM_RECTS).

    Ports:
        DETECTIONS (Detections, relative), IMAGE (Frame, optional), IMAGE_SIZE ((width, height), optional)
        -> NORM_RECT (NormalizedRect), NORM_RECTS (tuple of NormalizedRect)

    Example node:
        # Palm detections to upright hand regions: keypoint 0 is the wrist, 2 the middle finger's base.
        - calculator: DetectionsToRectsCalculator
          inputs: {DETECTIONS: palm_detections, IMAGE: input_video}
          outputs: {NORM_RECTS: palm_rects}
          options: {rotation_vector_start_keypoint_index: 0, rotation_vector_end_keypoint_index: 2,
                    rotation_vector_target_angle_degrees: 90}
    """

    @dataclass(frozen=True)
    class Options:
        conversion_mode: str = "bounding_box"
        rotation_vector_start_keypoint_index: int | None = None
        rotation_vector_end_keypoint_index: int | None = None
        rotation_vector_target_angle_degrees: float = 0.0
        output_zero_rect_for_empty_detections: bool = False

        def __post_init__(self):
            if self.conversion_mode not in _MODES:
                raise ValueError(f"conversion_mode must be one of {', '.join(_MODES)}, got {self.conversion_mode!r}")
            if (self.rotation_vector_start_keypoint_index is None) != (self.rotation_vector_end_keypoint_index is None):
                raise ValueError("rotation_vector_start_keypoint_index and rotation_vector_end_keypoint_index "
                                 "go together: give both or neither")

    DETECTIONS = Input[Detections]("DETECTIONS")
    IMAGE = Input[Frame]("IMAGE").optional()
    IMAGE_SIZE = Input[tuple]("IMAGE_SIZE").optional()
    NORM_RECT = Output[NormalizedRect]("NORM_RECT")
    NORM_RECTS = Output[tuple]("NORM_RECTS")

    def open(self, ctx):
        o = self.options
        self._rotate = o.rotation_vector_start_keypoint_index is not None
        self._target = math.radians(o.rotation_vector_target_angle_degrees)

    def process(self, ctx):
        dets = ctx.get(self.DETECTIONS)
        if dets is None:
            return
        if not dets.relative:
            raise ValueError("DETECTIONS: expected relative coordinates, got pixels")
        if len(dets) == 0:
            if self.options.output_zero_rect_for_empty_detections:
                zero = NormalizedRect(0.0, 0.0, 0.0, 0.0)
                ctx.send(self.NORM_RECT, zero)
                ctx.send(self.NORM_RECTS, (zero,))
            return
        size = image_size(ctx, self.IMAGE, self.IMAGE_SIZE)
        if self._rotate and size is None:
            raise ValueError(f"rotation needs the image size: no IMAGE or IMAGE_SIZE packet at timestamp "
                             f"{ctx.timestamp} (connect one of them)")
        rects = tuple(self.rect(dets, i, size) for i in range(len(dets)))
        ctx.send(self.NORM_RECT, rects[0])
        ctx.send(self.NORM_RECTS, rects)

    def rect(self, dets: Detections, i: int, size: tuple[int, int] | None) -> NormalizedRect:
        o = self.options
        if o.conversion_mode == "keypoints":
            kps = dets.keypoints[i]
            if len(kps) < 2:
                raise ValueError(f"conversion_mode keypoints needs 2 or more keypoints per detection, got {len(kps)}")
            x1, y1 = (float(v) for v in kps.min(axis=0))
            x2, y2 = (float(v) for v in kps.max(axis=0))
        else:
            x1, y1, x2, y2 = (float(v) for v in dets.xyxy[i])
        w, h = x2 - x1, y2 - y1
        rotation = 0.0
        if self._rotate:
            kps = dets.keypoints[i] if len(dets.keypoints) else ()
            start, end = o.rotation_vector_start_keypoint_index, o.rotation_vector_end_keypoint_index
            if max(start, end) >= len(kps):
                raise ValueError(f"rotation keypoints {start} and {end}: the detections have {len(kps)} keypoints")
            width, height = size
            (sx, sy), (ex, ey) = kps[start], kps[end]
            rotation = rotation_from_points(float(sx) * width, float(sy) * height, float(ex) * width,
                                            float(ey) * height, self._target)
        return NormalizedRect(x1 + w / 2, y1 + h / 2, w, h, rotation)
