"""Shared geometry of regions of interest: angles, the ROI-to-image matrix, rectangle overlap, image size."""
from __future__ import annotations

import math

import numpy as np

from pipelines.types import Frame, NormalizedRect


def normalize_radians(angle: float) -> float:
    """`angle` wrapped into [-pi, pi), as MediaPipe's NormalizeRadians."""
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def rotation_from_points(x0: float, y0: float, x1: float, y1: float, target_angle: float) -> float:
    """The rotation that turns the vector (x0, y0) -> (x1, y1), in pixels with y down, to `target_angle`
    (radians, counter-clockwise from the x axis as seen on screen): MediaPipe's rule for detections and hands."""
    return normalize_radians(target_angle - math.atan2(-(y1 - y0), x1 - x0))


def roi_to_image_matrix(rect: NormalizedRect, width: int, height: int, flip_horizontally: bool = False) -> np.ndarray:
    """The 4x4 matrix taking a point relative to the (rotated) ROI (0..1 across it, z scaled like x) to a point
    relative to the image (MediaPipe's GetRotatedSubRectToRectTransformMatrix with the rect in pixels)."""
    a, b = rect.width * width, rect.height * height  # the ROI's size in pixels
    e, f = rect.x_center * width, rect.y_center * height
    c, d = math.cos(rect.rotation), math.sin(rect.rotation)
    flip = -1.0 if flip_horizontally else 1.0
    g, h = 1.0 / width, 1.0 / height
    return np.array([
        [a * c * flip * g, -b * d * g, 0.0, (-0.5 * a * c * flip + 0.5 * b * d + e) * g],
        [a * d * flip * h, b * c * h, 0.0, (-0.5 * b * c - 0.5 * a * d * flip + f) * h],
        [0.0, 0.0, a * g, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ], np.float32)


def rect_iou(r1: NormalizedRect, r2: NormalizedRect) -> float:
    """Intersection over union of the two rects' axis-aligned boxes (rotation ignored, as MediaPipe's
    AssociationNormRectCalculator does)."""
    ax1, ay1 = r1.x_center - r1.width / 2, r1.y_center - r1.height / 2
    bx1, by1 = r2.x_center - r2.width / 2, r2.y_center - r2.height / 2
    iw = min(ax1 + r1.width, bx1 + r2.width) - max(ax1, bx1)
    ih = min(ay1 + r1.height, by1 + r2.height) - max(ay1, by1)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = r1.width * r1.height + r2.width * r2.height - inter
    return inter / union if union > 0 else 0.0


def image_size(ctx, image_port, size_port) -> tuple[int, int] | None:
    """(width, height) from an IMAGE (Frame) or IMAGE_SIZE ((width, height)) input at this timestamp, or None."""
    frame = ctx.get(image_port)
    if isinstance(frame, Frame):
        return frame.width, frame.height
    size = ctx.get(size_port)
    if size is None:
        return None
    width, height = size
    return int(width), int(height)
