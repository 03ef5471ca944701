from __future__ import annotations

import math

import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Frame, Landmarks, NormalizedRect

from .geometry import image_size, normalize_radians, rotation_from_points

# The wrist and the bases and middle joints of the fingers: the part of the hand that is stable as fingers move.
_PALM_LANDMARKS = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)
_WRIST, _INDEX_MCP, _MIDDLE_MCP, _RING_MCP = 0, 5, 9, 13  # in the full 21-point hand
_F32_TINY = float(np.finfo(np.float32).tiny)  # MediaPipe starts its max at float's min(), the smallest positive


def hand_rect(landmarks: Landmarks, width: int, height: int) -> NormalizedRect:
    """The rect around a hand's palm landmarks, turned so the wrist-to-middle-finger direction points up."""
    xy = landmarks.xyz[:, :2].astype(np.float64)
    if len(xy) == 21:
        wrist = xy[_WRIST]
        # MediaPipe's rule: the mean of the index and ring finger bases, averaged with the middle finger's.
        tip = ((xy[_INDEX_MCP] + xy[_RING_MCP]) / 2 + xy[_MIDDLE_MCP]) / 2
        xy = xy[list(_PALM_LANDMARKS)]
    else:  # already the 12 palm landmarks (their indices 0, 4, 6, 8 are the points above)
        wrist, tip = xy[0], ((xy[4] + xy[8]) / 2 + xy[6]) / 2
    rotation = rotation_from_points(wrist[0] * width, wrist[1] * height, tip[0] * width, tip[1] * height, math.pi / 2)
    reverse = normalize_radians(-rotation)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    centre = (lo + hi) / 2
    px = (xy[:, 0] - centre[0]) * width
    py = (xy[:, 1] - centre[1]) * height
    c, s = math.cos(reverse), math.sin(reverse)
    rx, ry = px * c - py * s, px * s + py * c
    max_x, max_y = max(rx.max(), _F32_TINY), max(ry.max(), _F32_TINY)
    min_x, min_y = rx.min(), ry.min()
    cx, cy = (max_x + min_x) / 2, (max_y + min_y) / 2
    c, s = math.cos(rotation), math.sin(rotation)
    x_center = (cx * c - cy * s + width * centre[0]) / width
    y_center = (cx * s + cy * c + height * centre[1]) / height
    return NormalizedRect(float(x_center), float(y_center), float((max_x - min_x) / width),
                          float((max_y - min_y) / height), float(rotation))


@register_calculator
class HandLandmarksToRectCalculator(Calculator):
    """The next frame's hand region from this frame's hand landmarks (MediaPipe's HandLandmarksToRectCalculator):
    the tightest rect around the wrist and the finger bases and middle joints (12 of the 21 points), in the hand's
    own orientation, turned so that wrist to middle finger points up. Grow it with RectTransformationCalculator
    (MediaPipe: scale 2.0, shift_y -0.1, square_long).

    Ports:
        NORM_LANDMARKS (Landmarks, relative to the image), IMAGE (Frame) or IMAGE_SIZE ((width, height))
        -> NORM_RECT (NormalizedRect)

    Example node:
        - calculator: HandLandmarksToRectCalculator
          inputs: {NORM_LANDMARKS: hand_landmarks, IMAGE: input_video}
          outputs: {NORM_RECT: hand_rect_from_landmarks}
    """

    NORM_LANDMARKS = Input[Landmarks]("NORM_LANDMARKS")
    IMAGE = Input[Frame]("IMAGE").optional()
    IMAGE_SIZE = Input[tuple]("IMAGE_SIZE").optional()
    NORM_RECT = Output[NormalizedRect]("NORM_RECT")

    def process(self, ctx):
        landmarks = ctx.get(self.NORM_LANDMARKS)
        if landmarks is None:
            return
        size = image_size(ctx, self.IMAGE, self.IMAGE_SIZE)
        if size is None:
            raise ValueError(f"no IMAGE or IMAGE_SIZE packet at timestamp {ctx.timestamp}: the hand's rotation is "
                             "measured in pixels and needs the image size with every landmarks packet")
        if len(landmarks) not in (21, 12):
            raise ValueError(f"NORM_LANDMARKS: expected the 21 hand landmarks (or its 12 palm ones), got {len(landmarks)}")
        ctx.send(self.NORM_RECT, hand_rect(landmarks, *size))
