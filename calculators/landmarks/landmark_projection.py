from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Frame, Landmarks, NormalizedRect

from .geometry import image_size, roi_to_image_matrix


def project_with_rect(landmarks: Landmarks, rect: NormalizedRect, ignore_rotation: bool = False) -> Landmarks:
    """MediaPipe's NORM_RECT-only projection: rotate about the ROI's centre in relative units, scale by the rect,
    z by its width. Exact for ROIs that are square in pixels (as hand, face and pose ROIs are)."""
    angle = 0.0 if ignore_rotation else rect.rotation
    c, s = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    x = landmarks.xyz[:, 0] - np.float32(0.5)
    y = landmarks.xyz[:, 1] - np.float32(0.5)
    out = np.empty_like(landmarks.xyz)
    out[:, 0] = (c * x - s * y) * np.float32(rect.width) + np.float32(rect.x_center)
    out[:, 1] = (s * x + c * y) * np.float32(rect.height) + np.float32(rect.y_center)
    out[:, 2] = landmarks.xyz[:, 2] * np.float32(rect.width)
    return Landmarks(out, landmarks.visibility, landmarks.presence)


def project_with_matrix(landmarks: Landmarks, matrix: np.ndarray) -> Landmarks:
    """x, y through the 4x4 ROI-to-image matrix; z scaled by the length the matrix gives the unit x segment."""
    m = np.asarray(matrix, np.float32).reshape(4, 4)
    xyz = landmarks.xyz
    out = np.empty_like(xyz)
    out[:, 0] = xyz[:, 0] * m[0, 0] + xyz[:, 1] * m[0, 1] + xyz[:, 2] * m[0, 2] + m[0, 3]
    out[:, 1] = xyz[:, 0] * m[1, 0] + xyz[:, 1] * m[1, 1] + xyz[:, 2] * m[1, 2] + m[1, 3]
    out[:, 2] = xyz[:, 2] * np.float32(math.hypot(float(m[0, 0]), float(m[1, 0])))
    return Landmarks(out, landmarks.visibility, landmarks.presence)


@register_calculator
class LandmarkProjectionCalculator(Calculator):
    """Projects landmarks relative to a region of interest back onto the whole image (MediaPipe's
    LandmarkProjectionCalculator). Three ways, as in MediaPipe:
    - NORM_RECT alone: rotate about the rect's centre and scale by its size (exact for a square ROI);
    - NORM_RECT with IMAGE or IMAGE_SIZE: through the rect's ROI-to-image matrix, right for any aspect;
    - PROJECTION_MATRIX (ImageToTensorCalculator's MATRIX): landmarks relative to the model input, letterbox
      included, straight to the image.
    z is scaled like x (by the ROI's relative width). Nothing is sent at a timestamp without landmarks or rect.

    Ports:
        NORM_LANDMARKS (Landmarks, relative to the ROI), NORM_RECT (NormalizedRect, optional), IMAGE (Frame,
        optional), IMAGE_SIZE ((width, height), optional), PROJECTION_MATRIX (4x4 array, optional)
        -> NORM_LANDMARKS (Landmarks, relative to the image)

    Example node:
        - calculator: LandmarkProjectionCalculator
          inputs: {NORM_LANDMARKS: hand_landmarks_in_roi, NORM_RECT: hand_rect}
          outputs: {NORM_LANDMARKS: hand_landmarks}
    """

    @dataclass(frozen=True)
    class Options:
        ignore_rotation: bool = False

    NORM_LANDMARKS = Input[Landmarks]("NORM_LANDMARKS")
    NORM_RECT = Input[NormalizedRect]("NORM_RECT").optional()
    IMAGE = Input[Frame]("IMAGE").optional()
    IMAGE_SIZE = Input[tuple]("IMAGE_SIZE").optional()
    PROJECTION_MATRIX = Input[np.ndarray]("PROJECTION_MATRIX").optional()
    OUT = Output[Landmarks]("NORM_LANDMARKS")

    def process(self, ctx):
        landmarks = ctx.get(self.NORM_LANDMARKS)
        if landmarks is None:
            return
        if not landmarks.relative:
            raise ValueError("NORM_LANDMARKS: expected relative landmarks, got pixels")
        rect = ctx.get(self.NORM_RECT)
        if rect is not None:
            size = image_size(ctx, self.IMAGE, self.IMAGE_SIZE)
            if size is None:
                ctx.send(self.OUT, project_with_rect(landmarks, rect, self.options.ignore_rotation))
            else:
                if self.options.ignore_rotation:
                    rect = NormalizedRect(rect.x_center, rect.y_center, rect.width, rect.height, 0.0)
                ctx.send(self.OUT, project_with_matrix(landmarks, roi_to_image_matrix(rect, *size)))
        elif ctx.has(self.PROJECTION_MATRIX):
            ctx.send(self.OUT, project_with_matrix(landmarks, ctx.get(self.PROJECTION_MATRIX)))
