from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Frame, Landmarks

from .filters import LowPassFilter


@register_calculator
class VisibilitySmoothingCalculator(Calculator):
    """Smooths each landmark's visibility with a low-pass filter (MediaPipe's VisibilitySmoothingCalculator; the
    pose graph uses alpha 0.1): v' = alpha * v + (1 - alpha) * v'_previous. `alpha: 1` passes values through. A
    timestamp with IMAGE (or IMAGE_SIZE) but no landmarks, or landmarks without visibility, starts afresh.

    Ports:
        NORM_LANDMARKS or LANDMARKS (Landmarks), IMAGE (Frame, optional), IMAGE_SIZE (optional)
        -> NORM_FILTERED_LANDMARKS / FILTERED_LANDMARKS (Landmarks)

    Example node:
        - calculator: VisibilitySmoothingCalculator
          inputs: {NORM_LANDMARKS: pose_landmarks, IMAGE: input_video}
          outputs: {NORM_FILTERED_LANDMARKS: pose_landmarks_smoothed_visibility}
          options: {alpha: 0.1}
    """

    @dataclass(frozen=True)
    class Options:
        alpha: float = 0.1

        def __post_init__(self):
            if not 0.0 <= self.alpha <= 1.0:
                raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")

    NORM_LANDMARKS = Input[Landmarks]("NORM_LANDMARKS").optional()
    LANDMARKS = Input[Landmarks]("LANDMARKS").optional()
    IMAGE = Input[Frame]("IMAGE").optional()
    IMAGE_SIZE = Input[tuple]("IMAGE_SIZE").optional()
    NORM_FILTERED_LANDMARKS = Output[Landmarks]("NORM_FILTERED_LANDMARKS")
    FILTERED_LANDMARKS = Output[Landmarks]("FILTERED_LANDMARKS")

    def open(self, ctx):
        self._filters: list[LowPassFilter] | None = None

    def process(self, ctx):
        normalized = ctx.get(self.NORM_LANDMARKS)
        landmarks = normalized if normalized is not None else ctx.get(self.LANDMARKS)
        if landmarks is None or len(landmarks) == 0 or landmarks.visibility is None:
            self._filters = None
            if landmarks is not None:
                self._send(ctx, normalized is not None, landmarks)
            return
        if self._filters is None or len(self._filters) != len(landmarks):
            self._filters = [LowPassFilter(self.options.alpha) for _ in range(len(landmarks))]
        smoothed = np.array([f.apply(float(v)) for f, v in zip(self._filters, landmarks.visibility)], np.float32)
        self._send(ctx, normalized is not None, replace(landmarks, visibility=smoothed))

    def _send(self, ctx, normalized: bool, landmarks: Landmarks) -> None:
        ctx.send(self.NORM_FILTERED_LANDMARKS if normalized else self.FILTERED_LANDMARKS, landmarks)
