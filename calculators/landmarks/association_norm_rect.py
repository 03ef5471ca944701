from __future__ import annotations

from dataclasses import dataclass

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import NormalizedRect

from .geometry import rect_iou


def associate(rect_lists: list, min_similarity_threshold: float) -> tuple[NormalizedRect, ...]:
    """Every rect of every list in order; a rect overlapping one kept so far by IoU > the threshold replaces it
    (within one list too, as MediaPipe's)."""
    return tuple(rect for _, rect in _associate(rect_lists, min_similarity_threshold))


def _associate(rect_lists: list, min_similarity_threshold: float) -> list[tuple[int, NormalizedRect]]:
    """`associate`, each kept rect with the index of the list it came from. A later list's rects are appended
    after every rect kept so far, so the result is the first list's survivors, then the second's, and so on."""
    result: list[tuple[int, NormalizedRect]] = []
    for index, rects in enumerate(rect_lists):
        for rect in rects or ():
            result = [kept for kept in result if rect_iou(rect, kept[1]) <= min_similarity_threshold]
            result.append((index, rect))
    return result


@register_calculator
class AssociationNormRectCalculator(Calculator):
    """Merges regions of interest from several sources into one list without duplicates (MediaPipe's
    AssociationNormRectCalculator): streams are read in order, and a rect whose box overlaps one already kept by
    IoU above `min_similarity_threshold` replaces it. List the detector's rects first and the tracked ones
    (from the previous frame's landmarks) last, so a tracked hand keeps its landmark-based rect. Rotation is
    ignored in the overlap, as in MediaPipe. Streams without a packet at a timestamp are skipped.

    FIRST_NORM_RECTS has the kept rects that came from the first stream, which lead the merged list: with the
    detector's rects first, the objects found anew on this frame. The hands graph runs the tracked regions'
    landmarks beside the detector and only these new ones after it, in MediaPipe's order.

    Ports:
        NORM_RECTS (tuple of NormalizedRect, one or more streams) -> NORM_RECTS (tuple of NormalizedRect),
        FIRST_NORM_RECTS (tuple of NormalizedRect, optional)

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
    FIRST = Output[tuple]("FIRST_NORM_RECTS")

    def process(self, ctx):
        # None (no packet) and the EMPTY loop marker count as no rects; positions kept, for FIRST_NORM_RECTS.
        lists = [r if r else () for r in ctx.get(self.NORM_RECTS, [])]
        kept = _associate(lists, self.options.min_similarity_threshold)
        ctx.send(self.OUT, tuple(rect for _, rect in kept))
        ctx.send(self.FIRST, tuple(rect for index, rect in kept if index == 0))
