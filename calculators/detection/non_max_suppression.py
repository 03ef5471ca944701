from dataclasses import dataclass

import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Detections

_F32 = np.float32
OVERLAP_TYPES = ("INTERSECTION_OVER_UNION", "JACCARD", "MODIFIED_JACCARD")
ALGORITHMS = ("DEFAULT", "WEIGHTED")


@register_calculator
class NonMaxSuppressionCalculator(Calculator):
    """Removes overlapping detections (MediaPipe's NonMaxSuppressionCalculator).

    Detections are visited by decreasing score (ties keep input order). DEFAULT keeps a detection unless
    it overlaps an already kept one by more than `min_suppression_threshold`. WEIGHTED takes the best
    remaining detection, gathers every remaining one overlapping it by more than the threshold (itself
    included) and replaces its box and keypoints by their score-weighted average; the score and label stay
    the top one's. Overlap: INTERSECTION_OVER_UNION; JACCARD (intersection over the area of the rectangle
    enclosing both); MODIFIED_JACCARD (intersection over the second box's area, as in MediaPipe: the
    candidate's in DEFAULT, the cluster's top box's in WEIGHTED).

    Several DETECTIONS streams are merged first (MediaPipe's num_detection_streams). `multiclass_nms` runs
    per label. Differences from MediaPipe: `max_num_detections` also limits WEIGHTED (MediaPipe ignores it
    there), and detections without labels are kept (MediaPipe drops them).

    Ports:
        DETECTIONS (Detections, one or more streams) -> DETECTIONS (Detections)

    Example node:
        # BlazeFace predicts each face from several anchors: blend them into one box per face.
        - calculator: NonMaxSuppressionCalculator
          inputs: {DETECTIONS: raw_detections}
          outputs: {DETECTIONS: face_detections}
          options:
            min_suppression_threshold: 0.3
            overlap_type: INTERSECTION_OVER_UNION
            algorithm: WEIGHTED
            return_empty_detections: true
    """

    @dataclass(frozen=True)
    class Options:
        min_suppression_threshold: float = 1.0
        overlap_type: str = "JACCARD"
        algorithm: str = "DEFAULT"
        max_num_detections: int = -1  # -1: no limit
        min_score_threshold: float = -1.0  # > 0: stop at the first detection scoring lower
        return_empty_detections: bool = False  # send an empty Detections when there is nothing to suppress
        multiclass_nms: bool = False  # suppress within each label separately

        def __post_init__(self):
            if self.overlap_type not in OVERLAP_TYPES:
                raise ValueError(f"overlap_type must be one of {', '.join(OVERLAP_TYPES)}, got {self.overlap_type!r}")
            if self.algorithm not in ALGORITHMS:
                raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
            if self.max_num_detections == 0 or self.max_num_detections < -1:
                raise ValueError(f"max_num_detections must be -1 (no limit) or > 0, got {self.max_num_detections}")

    DETECTIONS = Input[Detections]("DETECTIONS").multiple()
    OUT = Output[Detections]("DETECTIONS")

    def process(self, ctx):
        parts = [d for d in ctx.get(self.DETECTIONS, []) if d is not None]
        merged = _concat(parts)
        if merged is None or not len(merged):
            if self.options.return_empty_detections:
                ctx.send(self.OUT, merged if merged is not None else Detections.empty())
            return
        ctx.send(self.OUT, self.suppress(merged))

    def suppress(self, dets: Detections) -> Detections:
        o = self.options
        if o.multiclass_nms and dets.labels:
            picks = []
            for label in dict.fromkeys(dets.labels):
                members = np.array([i for i, lab in enumerate(dets.labels) if lab == label])
                sub = _take(dets, members, dets.xyxy[members], dets.keypoints[members] if dets.keypoints.size else None)
                picks.append(self._suppress_one(sub))
            out = _concat(picks)
            order = np.argsort(-out.scores, kind="stable")
            if o.max_num_detections > 0:
                order = order[:o.max_num_detections]
            return _take(out, order, out.xyxy[order], out.keypoints[order] if out.keypoints.size else None)
        return self._suppress_one(dets)

    def _suppress_one(self, dets: Detections) -> Detections:
        o = self.options
        boxes = np.asarray(dets.xyxy, _F32)
        scores = np.asarray(dets.scores, _F32)
        kps = np.asarray(dets.keypoints, _F32)
        limit = o.max_num_detections if o.max_num_detections > 0 else len(dets)
        order = np.argsort(-scores, kind="stable")
        thresh = _F32(o.min_suppression_threshold)
        kept: list[int] = []
        out_boxes: list[np.ndarray] = []
        out_kps: list[np.ndarray] = []
        if o.algorithm == "DEFAULT":
            for i in order:
                if len(kept) >= limit or (o.min_score_threshold > 0 and scores[i] < o.min_score_threshold):
                    break
                if kept and np.any(_overlap(o.overlap_type, boxes[kept], boxes[i]) > thresh):
                    continue
                kept.append(int(i))
            idx = np.asarray(kept, int)
            return _take(dets, idx, boxes[idx], kps[idx] if kps.size else None)
        remaining = order
        while remaining.size and len(kept) < limit:
            top = int(remaining[0])
            if o.min_score_threshold > 0 and scores[top] < o.min_score_threshold:
                break
            # MediaPipe measures each remaining box (first) against the top one (second).
            close = _overlap(o.overlap_type, boxes[remaining], boxes[top]) > thresh
            members = remaining[close]
            kept.append(top)
            if members.size:
                w = scores[members]
                total = w.sum(dtype=_F32)
                out_boxes.append((boxes[members] * w[:, None]).sum(axis=0, dtype=_F32) / total)
                if kps.size:
                    out_kps.append((kps[members] * w[:, None, None]).sum(axis=0, dtype=_F32) / total)
            else:  # degenerate top box (overlaps nothing, not even itself): kept as is, and MediaPipe stops
                out_boxes.append(boxes[top])
                if kps.size:
                    out_kps.append(kps[top])
                break
            remaining = remaining[~close]
        idx = np.asarray(kept, int)
        new_boxes = np.stack(out_boxes).astype(_F32) if out_boxes else np.zeros((0, 4), _F32)
        new_kps = np.stack(out_kps).astype(_F32) if out_kps else None
        return _take(dets, idx, new_boxes, new_kps)


def _overlap(kind: str, rects: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Similarity of each of `rects` (M, 4) xyxy with `ref` (4,), as MediaPipe's OverlapSimilarity(rect, ref)."""
    x1 = np.maximum(rects[:, 0], ref[0])
    y1 = np.maximum(rects[:, 1], ref[1])
    x2 = np.minimum(rects[:, 2], ref[2])
    y2 = np.minimum(rects[:, 3], ref[3])
    empty = (rects[:, 0] > rects[:, 2]) | (rects[:, 1] > rects[:, 3]) | (ref[0] > ref[2]) | (ref[1] > ref[3])
    disjoint = empty | (x2 < x1) | (y2 < y1)
    inter = np.where(disjoint, _F32(0), (x2 - x1) * (y2 - y1)).astype(_F32)
    area = (rects[:, 2] - rects[:, 0]) * (rects[:, 3] - rects[:, 1])
    ref_area = (ref[2] - ref[0]) * (ref[3] - ref[1])
    if kind == "INTERSECTION_OVER_UNION":
        norm = area + ref_area - inter
    elif kind == "MODIFIED_JACCARD":
        norm = np.full_like(area, ref_area)
    else:  # JACCARD: the rectangle enclosing both
        norm = ((np.maximum(rects[:, 2], ref[2]) - np.minimum(rects[:, 0], ref[0]))
                * (np.maximum(rects[:, 3], ref[3]) - np.minimum(rects[:, 1], ref[1])))
    with np.errstate(divide="ignore", invalid="ignore"):
        sim = np.where(~disjoint & (norm > 0), inter / norm, _F32(0))
    return sim.astype(_F32)


def _take(dets: Detections, idx: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray | None) -> Detections:
    idx = np.asarray(idx, int)
    k = dets.keypoints.shape[1] if dets.keypoints.ndim == 3 else 0
    kps = keypoints if keypoints is not None else np.zeros((len(idx), k, 2), _F32)
    return Detections(
        np.asarray(boxes, _F32).reshape(len(idx), 4), dets.scores[idx], kps,
        tuple(dets.labels[i] for i in idx) if dets.labels else (),
        dets.track_ids[idx] if dets.track_ids is not None else None, dets.relative)


def _concat(parts: list[Detections]) -> Detections | None:
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    non_empty = [p for p in parts if len(p)] or parts[:1]
    ks = {p.keypoints.shape[1] for p in non_empty}
    if len(ks) > 1:
        raise ValueError(f"DETECTIONS streams carry different numbers of keypoints {sorted(ks)}; cannot merge them")
    if len({p.relative for p in non_empty}) > 1:
        raise ValueError("DETECTIONS streams mix relative and pixel coordinates; cannot merge them")
    labelled = any(p.labels for p in non_empty)
    tracked = all(p.track_ids is not None for p in non_empty)
    return Detections(
        np.concatenate([p.xyxy for p in non_empty]).astype(_F32),
        np.concatenate([p.scores for p in non_empty]).astype(_F32),
        np.concatenate([p.keypoints for p in non_empty]).astype(_F32),
        tuple(lab for p in non_empty for lab in (p.labels or ("",) * len(p))) if labelled else (),
        np.concatenate([p.track_ids for p in non_empty]) if tracked else None,
        non_empty[0].relative)
