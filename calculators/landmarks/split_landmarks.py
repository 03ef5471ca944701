from __future__ import annotations

from dataclasses import dataclass

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Landmarks


@register_calculator
class SplitLandmarksCalculator(Calculator):
    """Cuts one object's landmarks into ranges (MediaPipe's SplitNormalizedLandmarkListCalculator): the k-th range
    [begin, end) goes to the k-th OUT stream, e.g. the pose model's 33 body landmarks and its 2 alignment points.

    Ports:
        IN (Landmarks) -> OUT (Landmarks, one stream per range)

    Example node:
        - calculator: SplitLandmarksCalculator
          inputs: {IN: all_pose_landmarks}
          outputs: {OUT: [pose_landmarks, auxiliary_landmarks]}
          options: {ranges: [[0, 33], [33, 35]]}
    """

    @dataclass(frozen=True)
    class Options:
        ranges: tuple[tuple[int, int], ...]

        def __post_init__(self):
            for r in self.ranges:
                if len(r) != 2 or not 0 <= r[0] < r[1]:
                    raise ValueError(f"ranges: each range is [begin, end) with 0 <= begin < end, got {list(r)}")

    IN = Input[Landmarks]("IN")
    OUT = Output[Landmarks]("OUT").multiple()

    def process(self, ctx):
        landmarks = ctx.get(self.IN)
        for index, (begin, end) in enumerate(self.options.ranges):
            if end > len(landmarks):
                raise ValueError(f"range [{begin}, {end}): the landmarks have only {len(landmarks)} points")
            part = slice(begin, end)
            ctx.send(self.OUT, Landmarks(
                landmarks.xyz[part],
                None if landmarks.visibility is None else landmarks.visibility[part],
                None if landmarks.presence is None else landmarks.presence[part],
                landmarks.relative, landmarks.world), index=index)
