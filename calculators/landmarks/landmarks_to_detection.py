from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Detections, Landmarks


@register_calculator
class LandmarksToDetectionCalculator(Calculator):
    """One object's landmarks as a detection (MediaPipe's LandmarksToDetectionCalculator): the box around them,
    the landmarks' x, y as keypoints, score 1. `selected_landmark_indices` keeps only those landmarks, in that
    order (the pose graph picks its two alignment points, 33 and 34, this way).

    Ports:
        NORM_LANDMARKS (Landmarks, relative) -> DETECTIONS (Detections: one detection)

    Example node:
        - calculator: LandmarksToDetectionCalculator
          inputs: {NORM_LANDMARKS: pose_landmarks}
          outputs: {DETECTIONS: pose_alignment_detection}
          options: {selected_landmark_indices: [33, 34]}
    """

    @dataclass(frozen=True)
    class Options:
        selected_landmark_indices: tuple[int, ...] = ()

    NORM_LANDMARKS = Input[Landmarks]("NORM_LANDMARKS")
    DETECTIONS = Output[Detections]("DETECTIONS")

    def process(self, ctx):
        landmarks = ctx.get(self.NORM_LANDMARKS)
        if not landmarks.relative:
            raise ValueError("NORM_LANDMARKS: expected relative landmarks, got pixels")
        xy = landmarks.xyz[:, :2]
        picked = self.options.selected_landmark_indices
        if picked:
            if max(picked) >= len(xy):
                raise ValueError(f"selected_landmark_indices {list(picked)}: the landmarks have {len(xy)} points")
            xy = xy[list(picked)]
        if len(xy) == 0:
            raise ValueError("NORM_LANDMARKS: no landmarks to make a detection of")
        box = np.concatenate([xy.min(axis=0), xy.max(axis=0)]).astype(np.float32)
        ctx.send(self.DETECTIONS, Detections(box[None], np.ones(1, np.float32), xy[None].astype(np.float32)))
