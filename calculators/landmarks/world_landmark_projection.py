from __future__ import annotations

import math

import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Landmarks, NormalizedRect


@register_calculator
class WorldLandmarkProjectionCalculator(Calculator):
    """Turns world landmarks (metres, about the object's centre) by the rotation of the ROI they were found in
    (MediaPipe's WorldLandmarkProjectionCalculator), so they stand as in the image rather than as in the upright
    model input; z is unchanged. Without a NORM_RECT packet nothing is sent.

    Ports:
        LANDMARKS (Landmarks, world), NORM_RECT (NormalizedRect) -> LANDMARKS (Landmarks, world)

    Example node:
        - calculator: WorldLandmarkProjectionCalculator
          inputs: {LANDMARKS: unprojected_world_landmarks, NORM_RECT: hand_rect}
          outputs: {LANDMARKS: hand_world_landmarks}
    """

    LANDMARKS = Input[Landmarks]("LANDMARKS")
    NORM_RECT = Input[NormalizedRect]("NORM_RECT")
    OUT = Output[Landmarks]("LANDMARKS")

    def process(self, ctx):
        landmarks, rect = ctx.get(self.LANDMARKS), ctx.get(self.NORM_RECT)
        if landmarks is None or rect is None:
            return
        c, s = np.float32(math.cos(rect.rotation)), np.float32(math.sin(rect.rotation))
        xyz = landmarks.xyz.copy()
        xyz[:, 0] = c * landmarks.xyz[:, 0] - s * landmarks.xyz[:, 1]
        xyz[:, 1] = s * landmarks.xyz[:, 0] + c * landmarks.xyz[:, 1]
        ctx.send(self.OUT, Landmarks(xyz, landmarks.visibility, landmarks.presence, relative=False, world=True))
