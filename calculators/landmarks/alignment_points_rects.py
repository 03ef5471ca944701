from __future__ import annotations

import math

from pipelines import register_calculator
from pipelines.types import Detections, NormalizedRect

from .detections_to_rects import DetectionsToRectsCalculator
from .geometry import rotation_from_points


@register_calculator
class AlignmentPointsRectsCalculator(DetectionsToRectsCalculator):
    """Regions of interest from two alignment keypoints (MediaPipe's AlignmentPointsRectsCalculator), as the pose
    and face graphs use: the rect is centred on the start keypoint, a square (in pixels) whose side is twice the
    distance to the end keypoint, turned like DetectionsToRectsCalculator's rotation between the same keypoints.
    Options and ports are DetectionsToRectsCalculator's; the start and end keypoints and the image size are
    required.

    Ports:
        DETECTIONS (Detections, relative), IMAGE (Frame) or IMAGE_SIZE ((width, height))
        -> NORM_RECT (NormalizedRect), NORM_RECTS (tuple of NormalizedRect)

    Example node:
        # BlazePose: keypoint 0 is the hips' middle, 1 a point on the circle around the whole body.
        - calculator: AlignmentPointsRectsCalculator
          inputs: {DETECTIONS: pose_detections, IMAGE: input_video}
          outputs: {NORM_RECT: pose_rect_from_detection}
          options: {rotation_vector_start_keypoint_index: 0, rotation_vector_end_keypoint_index: 1,
                    rotation_vector_target_angle_degrees: 90}
    """

    @classmethod
    def check(cls, options) -> list[str]:
        if options.rotation_vector_start_keypoint_index is None:
            return ["rotation_vector_start_keypoint_index and rotation_vector_end_keypoint_index are required: "
                    "they are the alignment points"]
        return []

    def rect(self, dets: Detections, i: int, size: tuple[int, int] | None) -> NormalizedRect:
        o = self.options
        start, end = o.rotation_vector_start_keypoint_index, o.rotation_vector_end_keypoint_index
        kps = dets.keypoints[i] if len(dets.keypoints) else ()
        if max(start, end) >= len(kps):
            raise ValueError(f"alignment keypoints {start} and {end}: the detections have {len(kps)} keypoints")
        width, height = size
        x0, y0 = float(kps[start][0]) * width, float(kps[start][1]) * height
        x1, y1 = float(kps[end][0]) * width, float(kps[end][1]) * height
        side = math.hypot(x1 - x0, y1 - y0) * 2.0
        rotation = rotation_from_points(x0, y0, x1, y1, self._target)
        return NormalizedRect(x0 / width, y0 / height, side / width, side / height, rotation)
