from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Frame, Landmarks, NormalizedRect

from .filters import OneEuroFilter, RelativeVelocityFilter
from .geometry import image_size

_FILTERS = ("one_euro", "velocity", "none")


@register_calculator
class LandmarksSmoothingCalculator(Calculator):
    """Smooths one object's landmarks over time (MediaPipe's LandmarksSmoothingCalculator), each coordinate of
    each landmark through its own filter: `filter: one_euro` (`frequency`, `min_cutoff`, `beta`,
    `derivate_cutoff`; MediaPipe's pose graph: 0.05, 80, 1), `velocity` (`window_size`, `velocity_scale`) or
    `none`. Relative landmarks are filtered in pixels (x * width, y * height, z * width), so IMAGE or IMAGE_SIZE
    must come with them. Values are divided by the object's scale, the mean of its width and height in pixels:
    the OBJECT_SCALE_ROI rect's if connected, else the landmarks' box (`disable_value_scaling` turns this off;
    below `min_allowed_object_scale` landmarks pass unfiltered).

    A timestamp with IMAGE (or IMAGE_SIZE) but no landmarks, or with empty landmarks, means tracking was lost:
    the filters start afresh, so a new object never inherits the last one's motion. Connect the frame stream.

    Ports:
        NORM_LANDMARKS (Landmarks, relative) or LANDMARKS (Landmarks: pixels or world), IMAGE (Frame) or
        IMAGE_SIZE ((width, height)), OBJECT_SCALE_ROI (NormalizedRect, optional)
        -> NORM_FILTERED_LANDMARKS / FILTERED_LANDMARKS (Landmarks, same kind as in)

    Example node:
        - calculator: LandmarksSmoothingCalculator
          inputs: {NORM_LANDMARKS: pose_landmarks, IMAGE: input_video, OBJECT_SCALE_ROI: pose_alignment_roi}
          outputs: {NORM_FILTERED_LANDMARKS: smoothed_pose_landmarks}
          options: {filter: one_euro, min_cutoff: 0.05, beta: 80.0, derivate_cutoff: 1.0}
    """

    @dataclass(frozen=True)
    class Options:
        filter: str = "one_euro"
        frequency: float = 30.0
        min_cutoff: float = 1.0
        beta: float = 0.0
        derivate_cutoff: float = 1.0
        window_size: int = 5
        velocity_scale: float = 10.0
        min_allowed_object_scale: float = 1e-6
        disable_value_scaling: bool = False

        def __post_init__(self):
            if self.filter not in _FILTERS:
                raise ValueError(f"filter must be one of {', '.join(_FILTERS)}, got {self.filter!r}")
            for name in ("frequency", "min_cutoff", "derivate_cutoff"):
                if getattr(self, name) <= 1e-6:
                    raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
            if self.window_size < 1:
                raise ValueError(f"window_size must be >= 1, got {self.window_size}")

    NORM_LANDMARKS = Input[Landmarks]("NORM_LANDMARKS").optional()
    LANDMARKS = Input[Landmarks]("LANDMARKS").optional()
    IMAGE = Input[Frame]("IMAGE").optional()
    IMAGE_SIZE = Input[tuple]("IMAGE_SIZE").optional()
    OBJECT_SCALE_ROI = Input[NormalizedRect]("OBJECT_SCALE_ROI").optional()
    NORM_FILTERED_LANDMARKS = Output[Landmarks]("NORM_FILTERED_LANDMARKS")
    FILTERED_LANDMARKS = Output[Landmarks]("FILTERED_LANDMARKS")

    def open(self, ctx):
        self._filters: list | None = None

    def process(self, ctx):
        normalized = ctx.get(self.NORM_LANDMARKS)
        landmarks = normalized if normalized is not None else ctx.get(self.LANDMARKS)
        if landmarks is None or len(landmarks) == 0:
            self._filters = None  # tracking lost: start afresh
            return
        size = image_size(ctx, self.IMAGE, self.IMAGE_SIZE)
        if landmarks.relative:
            if size is None:
                raise ValueError(f"no IMAGE or IMAGE_SIZE packet at timestamp {ctx.timestamp}: relative landmarks "
                                 "are filtered in pixels")
            to_pixels = np.array([size[0], size[1], size[0]], np.float64)
        else:
            to_pixels = np.ones(3, np.float64)
        xyz = landmarks.xyz.astype(np.float64) * to_pixels
        filtered = self.smooth(ctx.timestamp, xyz, self._object_scale(ctx, xyz, size))
        out = Landmarks((filtered / to_pixels).astype(np.float32), landmarks.visibility, landmarks.presence,
                        landmarks.relative, landmarks.world)
        ctx.send(self.NORM_FILTERED_LANDMARKS if normalized is not None else self.FILTERED_LANDMARKS, out)

    def _object_scale(self, ctx, xyz: np.ndarray, size) -> float:
        roi = ctx.get(self.OBJECT_SCALE_ROI)
        if roi is not None and size is not None:
            return (roi.width * size[0] + roi.height * size[1]) / 2.0
        span = xyz[:, :2].max(axis=0) - xyz[:, :2].min(axis=0)
        return float(span[0] + span[1]) / 2.0

    def smooth(self, timestamp: int, xyz: np.ndarray, object_scale: float) -> np.ndarray:
        o = self.options
        if o.filter == "none":
            return xyz
        value_scale = 1.0
        if not o.disable_value_scaling:
            if object_scale < o.min_allowed_object_scale:
                return xyz
            value_scale = 1.0 / object_scale
        if self._filters is None or len(self._filters) != xyz.size:
            self._filters = [self._new_filter() for _ in range(xyz.size)]
        flat = xyz.reshape(-1)
        out = np.array([f.apply(timestamp, float(v), value_scale) for f, v in zip(self._filters, flat)])
        return out.reshape(xyz.shape)

    def _new_filter(self):
        o = self.options
        if o.filter == "one_euro":
            return OneEuroFilter(o.frequency, o.min_cutoff, o.beta, o.derivate_cutoff)
        return RelativeVelocityFilter(o.window_size, o.velocity_scale)
