from __future__ import annotations

from dataclasses import dataclass

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import NormalizedRect

from .geometry import rect_iou


def associate(rect_lists: list, min_similarity_threshold: float) -> tuple[NormalizedRect, ...]:
    """Every rect of every list in order; a rect overlapping one kept so far by IoU > the threshold replaces it
    (within one list too, as MediaPipe's)."""
    result: list[NormalizedRect] = []
    for rects in rect_lists:
        for rect in rects or ():
            result = [kept for kept in result if rect_iou(rect, kept) <= min_similarity_threshold]
            result.append(rect)
    return tuple(result)


@register_calculator
class AssociationNormRectCalculator(Calculator):
    """Merges regions of interest from several sources into one list without duplicates (MediaPipe's
    AssociationNormRectCalculator): streams are read in order, and a rect whose box overlaps one already kept by
    IoU above `min_similarity_threshold` replaces it. List the detector's rects first and the tracked ones
    (from the previous frame's landmarks) last, so a tracked hand keeps its landmark-based rect. Rotation is
    ignored in the overlap, as in MediaPipe. Streams without a packet at a timestamp are skipped.

    Ports:
        NORM_RECTS (tuple of NormalizedRect, one or more streams) -> NORM_RECTS (tuple of NormalizedRect)

    Example node:
        - calculator: AssociationNormRectCalculator
          inputs: {NORM_RECTS: [hand_rects_from_palm_detections, prev_hand_rects_from_landmarks]}
          outputs: {NORM_RECTS: hand_rects}
          options: {min_similarity_threshold: 0.5}
    """

    @dataclass(frozen=True)
    class Options:
        min_similarity_threshold: float = 1.0

        def __post_init__(self):
            if self.min_similarity_threshold < 0:
                raise ValueError(f"min_similarity_threshold must be >= 0, got {self.min_similarity_threshold}")

    NORM_RECTS = Input[tuple]("NORM_RECTS").multiple()
    OUT = Output[tuple]("NORM_RECTS")

    def process(self, ctx):
        lists = [r for r in ctx.get(self.NORM_RECTS, []) if r]  # None (no packet) and the EMPTY loop marker
        ctx.send(self.OUT, associate(lists, self.options.min_similarity_threshold))
