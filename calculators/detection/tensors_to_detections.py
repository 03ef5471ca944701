import math
from dataclasses import dataclass

import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Detections, Tensors

_F32 = np.float32
BOX_FORMATS = ("UNSPECIFIED", "YXHW", "XYWH", "XYXY")


@register_calculator
class TensorsToDetectionsCalculator(Calculator):
    """Decodes an SSD detector's raw outputs against its anchors (MediaPipe's TensorsToDetectionsCalculator).

    TENSORS holds the box regressors (1, num_boxes, num_coords) then the class scores (1, num_boxes,
    num_classes), in the model's order; a third (num_boxes, 4) tensor of y_center, x_center, h, w is used as
    the anchors when present. Otherwise the ANCHORS packet (sent once, at timestamp 0, by
    SsdAnchorsCalculator) is cached. Decoding is MediaPipe's, in float32: centres and keypoints are
    `raw / scale * anchor_size + anchor_centre`, sizes `raw / scale * anchor_size` (or `exp(raw / scale) *
    anchor_size`), scores `sigmoid(clip(logit))` maxed over the allowed classes. Boxes under
    `min_score_thresh` or with a negative or NaN size are dropped, in anchor order, before `max_results`.
    A Detections (possibly empty) is sent at every TENSORS timestamp, relative to the model input.

    Ports:
        TENSORS (Tensors), ANCHORS (np.ndarray, (N, 4) x_center, y_center, w, h; optional)
        -> DETECTIONS (Detections, relative to the model input; labels from `labels` by class id)

    Example node:
        # BlazeFace short range: 896 anchors, 16 values each (box + 6 keypoints), x first.
        - calculator: TensorsToDetectionsCalculator
          inputs: {TENSORS: output_tensors, ANCHORS: anchors}
          outputs: {DETECTIONS: raw_detections}
          options:
            num_classes: 1
            num_boxes: 896
            num_coords: 16
            keypoint_coord_offset: 4
            num_keypoints: 6
            x_scale: 128.0
            y_scale: 128.0
            w_scale: 128.0
            h_scale: 128.0
            reverse_output_order: true
            sigmoid_score: true
            score_clipping_thresh: 100.0
            min_score_thresh: 0.5
    """

    @dataclass(frozen=True)
    class Options:
        num_classes: int
        num_boxes: int
        num_coords: int
        box_coord_offset: int = 0
        keypoint_coord_offset: int = 0
        num_keypoints: int = 0
        num_values_per_keypoint: int = 2
        x_scale: float = 0.0
        y_scale: float = 0.0
        w_scale: float = 0.0
        h_scale: float = 0.0
        apply_exponential_on_box_size: bool = False
        reverse_output_order: bool = False  # x before y (XYWH) instead of MediaPipe's default YXHW
        box_format: str = "UNSPECIFIED"  # UNSPECIFIED (from reverse_output_order), YXHW, XYWH, XYXY
        ignore_classes: tuple[int, ...] = ()
        allow_classes: tuple[int, ...] = ()
        sigmoid_score: bool = False
        score_clipping_thresh: float | None = None  # clip logits to +-this before the sigmoid
        flip_vertically: bool = False
        min_score_thresh: float | None = None
        max_results: int = -1  # -1: all
        labels: tuple[str, ...] = ("face",)  # label of class id i; str(i) beyond the list

        def __post_init__(self):
            if self.num_classes < 1 or self.num_boxes < 1:
                raise ValueError(f"num_classes and num_boxes must be >= 1, got {self.num_classes} and {self.num_boxes}")
            if self.num_values_per_keypoint != 2:
                raise ValueError(f"num_values_per_keypoint must be 2 (2D keypoints), got {self.num_values_per_keypoint}")
            needed = 4 + self.num_keypoints * self.num_values_per_keypoint
            if self.num_coords != needed:
                raise ValueError(f"num_coords must be 4 + num_keypoints * num_values_per_keypoint = {needed}, "
                                 f"got {self.num_coords}")
            if self.box_coord_offset < 0 or self.box_coord_offset + 4 > self.num_coords:
                raise ValueError(f"box_coord_offset {self.box_coord_offset} leaves no room for 4 box values "
                                 f"in num_coords {self.num_coords}")
            if self.num_keypoints and not 0 <= self.keypoint_coord_offset <= self.num_coords - 2 * self.num_keypoints:
                raise ValueError(f"keypoint_coord_offset {self.keypoint_coord_offset} + {self.num_keypoints} keypoints "
                                 f"does not fit in num_coords {self.num_coords}")
            if min(self.x_scale, self.y_scale, self.w_scale, self.h_scale) <= 0:
                raise ValueError("x_scale, y_scale, w_scale and h_scale must all be > 0 (the model input size "
                                 f"for BlazeFace), got {self.x_scale}, {self.y_scale}, {self.w_scale}, {self.h_scale}")
            if self.box_format not in BOX_FORMATS:
                raise ValueError(f"box_format must be one of {', '.join(BOX_FORMATS)}, got {self.box_format!r}")
            if self.ignore_classes and self.allow_classes:
                raise ValueError("give ignore_classes or allow_classes, not both")
            if self.max_results == 0 or self.max_results < -1:
                raise ValueError(f"max_results must be -1 (all) or > 0, got {self.max_results}")
            if self.score_clipping_thresh is not None and self.score_clipping_thresh <= 0:
                raise ValueError(f"score_clipping_thresh must be > 0, got {self.score_clipping_thresh}")

    TENSORS = Input[Tensors]("TENSORS")
    ANCHORS = Input[np.ndarray]("ANCHORS").optional()
    DETECTIONS = Output[Detections]("DETECTIONS")

    def open(self, ctx):
        o = self.options
        self._anchors: np.ndarray | None = None
        fmt = o.box_format if o.box_format != "UNSPECIFIED" else ("XYWH" if o.reverse_output_order else "YXHW")
        self._format = fmt
        allowed = np.ones(o.num_classes, bool)
        if o.allow_classes:
            allowed[:] = False
            allowed[[c for c in o.allow_classes if 0 <= c < o.num_classes]] = True
        allowed[[c for c in o.ignore_classes if 0 <= c < o.num_classes]] = False
        self._allowed = allowed
        self._all_allowed = bool(allowed.all())
        self._raw_cut = _raw_cut(o)

    def process(self, ctx):
        if ctx.has(self.ANCHORS):
            self._anchors = _check_anchors(ctx.get(self.ANCHORS), self.options.num_boxes, "ANCHORS")
        if not ctx.has(self.TENSORS):
            return
        tensors = ctx.get(self.TENSORS)
        if len(tensors) not in (2, 3):
            raise ValueError(f"TENSORS: expected 2 tensors (regressors, scores) or 3 (+ anchors), got {len(tensors)}")
        if len(tensors) == 3 and self._anchors is None:
            yx = _check_anchors(np.asarray(tensors[2], _F32), self.options.num_boxes, "TENSORS[2] (anchors)")
            self._anchors = yx[:, [1, 0, 3, 2]]  # y_center, x_center, h, w -> x_center, y_center, w, h
        if self._anchors is None:
            raise ValueError("no anchors: connect ANCHORS (SsdAnchorsCalculator, sent at timestamp 0 before any "
                             "TENSORS) or pass them as a third tensor")
        ctx.send(self.DETECTIONS, self.decode(tensors[0], tensors[1], self._anchors))

    def decode(self, raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray) -> Detections:
        """Raw model outputs + (N, 4) x_center, y_center, w, h anchors -> Detections (relative)."""
        o = self.options
        boxes = _reshape(raw_boxes, o.num_boxes, o.num_coords, "regressors (TENSORS[0])")
        scores_raw = _reshape(raw_scores, o.num_boxes, o.num_classes, "scores (TENSORS[1])")
        # Only the rows whose raw logit could pass the threshold are scored (a few of the hundreds of anchors);
        # the score itself is computed as before, so the rows kept and their scores are the same.
        rows = self._may_pass(scores_raw)
        scores = scores_raw[rows]
        if o.sigmoid_score:
            if o.score_clipping_thresh is not None:
                t = _F32(o.score_clipping_thresh)
                scores = np.clip(scores, -t, t)
            with np.errstate(over="ignore"):
                scores = _F32(1) / (_F32(1) + np.exp(-scores))
        if not self._all_allowed:
            scores = np.where(self._allowed[None, :], scores, -np.inf)
        class_ids = np.argmax(scores, axis=1) if o.num_classes > 1 else np.zeros(len(rows), np.intp)
        best = scores[np.arange(len(rows)), class_ids].astype(_F32)
        candidate = np.isfinite(best)
        if o.min_score_thresh is not None:
            candidate &= best >= _F32(o.min_score_thresh)
        rows, best, class_ids = rows[candidate], best[candidate], class_ids[candidate]
        ax, ay, aw, ah = (anchors[rows, i] for i in range(4))
        b = boxes[rows, o.box_coord_offset:o.box_coord_offset + 4]
        if self._format == "YXHW":
            yc, xc, h, w = b.T
        elif self._format == "XYWH":
            xc, yc, w, h = b.T
        else:  # XYXY: distances to the anchor centre
            xc, yc = (b[:, 2] - b[:, 0]) / _F32(2), (b[:, 3] - b[:, 1]) / _F32(2)
            w, h = b[:, 2] + b[:, 0], b[:, 3] + b[:, 1]
        xc = xc / _F32(o.x_scale) * aw + ax
        yc = yc / _F32(o.y_scale) * ah + ay
        if o.apply_exponential_on_box_size:
            with np.errstate(over="ignore"):
                h = np.exp(h / _F32(o.h_scale)) * ah
                w = np.exp(w / _F32(o.w_scale)) * aw
        else:
            h = h / _F32(o.h_scale) * ah
            w = w / _F32(o.w_scale) * aw
        half_w, half_h = w / _F32(2), h / _F32(2)
        xyxy = np.stack([xc - half_w, yc - half_h, xc + half_w, yc + half_h], axis=1)

        width, height = xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]
        sized = (width >= 0) & (height >= 0)  # NaN sizes compare False
        idx, xyxy, best, class_ids = rows[sized], xyxy[sized], best[sized], class_ids[sized]
        ax, ay, aw, ah = ax[sized], ay[sized], aw[sized], ah[sized]
        if o.max_results > 0:
            idx, xyxy, best, class_ids = (a[:o.max_results] for a in (idx, xyxy, best, class_ids))
            ax, ay, aw, ah = ax[:o.max_results], ay[:o.max_results], aw[:o.max_results], ah[:o.max_results]
        keypoints = np.zeros((len(idx), o.num_keypoints, 2), _F32)
        if o.num_keypoints:
            k = boxes[idx, o.keypoint_coord_offset:o.keypoint_coord_offset + 2 * o.num_keypoints]
            k = k.reshape(len(idx), o.num_keypoints, 2)
            kx, ky = (k[..., 1], k[..., 0]) if self._format == "YXHW" else (k[..., 0], k[..., 1])
            keypoints[..., 0] = kx / _F32(o.x_scale) * aw[:, None] + ax[:, None]
            keypoints[..., 1] = ky / _F32(o.y_scale) * ah[:, None] + ay[:, None]
        if o.flip_vertically:
            xyxy = np.stack([xyxy[:, 0], _F32(1) - xyxy[:, 3], xyxy[:, 2], _F32(1) - xyxy[:, 1]], axis=1)
            keypoints[..., 1] = _F32(1) - keypoints[..., 1]
        labels = tuple(o.labels[c] if c < len(o.labels) else str(c) for c in class_ids.tolist())
        return Detections(np.ascontiguousarray(xyxy, _F32), best, keypoints, labels)

    def _may_pass(self, scores_raw: np.ndarray) -> np.ndarray:
        """The rows (in order) with an allowed raw score that could reach min_score_thresh: the score is
        monotonic in the raw value, so a row under the threshold's preimage (less a margin for float32 rounding)
        cannot pass. All rows when there is no threshold to invert."""
        cut = self._raw_cut
        if cut is None:
            return np.arange(len(scores_raw))
        allowed = scores_raw[:, 0] if self._all_allowed and scores_raw.shape[1] == 1 else (
            scores_raw[:, self._allowed].max(axis=1, initial=-np.inf))
        return np.flatnonzero(allowed >= cut)


def _raw_cut(o) -> float | None:
    """A raw score under which no row can reach `min_score_thresh`, or None where none is safe to give."""
    t = o.min_score_thresh
    if t is None:
        return None
    if not o.sigmoid_score:
        return float(np.nextafter(_F32(t), _F32(-np.inf)))  # the score is the raw value: one ulp of slack
    if not 0 < t < 1:
        return None  # t <= 0 passes every finite score; t >= 1: left to the exact comparison
    # The logit of t, less a margin far wider than float32's error in 1 / (1 + exp(-x)) (a few ulps).
    return math.log(t / (1 - t)) - 1e-3 * max(1.0, abs(math.log(t / (1 - t))))


def _reshape(array: np.ndarray, rows: int, cols: int, what: str) -> np.ndarray:
    a = np.asarray(array)
    if a.size != rows * cols:
        raise ValueError(f"{what}: expected {rows} x {cols} = {rows * cols} values (shape (1, {rows}, {cols})), "
                         f"got shape {a.shape}; check num_boxes, num_coords and num_classes against the model")
    return a.reshape(rows, cols).astype(_F32, copy=False)


def _check_anchors(anchors: np.ndarray, num_boxes: int, what: str) -> np.ndarray:
    a = np.asarray(anchors, _F32)
    if a.shape != (num_boxes, 4):
        raise ValueError(f"{what}: expected ({num_boxes}, 4) anchors (num_boxes from the options), got shape {a.shape}; "
                         "do the SsdAnchorsCalculator options match the model?")
    return a
