"""Agreement between two runs of a landmark or segmentation solution (MediaPipe's or a graph's).

Landmark runs are JSON lines, one per frame, in the schema the solution graphs' ``--landmarks`` write and
tests/data/mediapipe_solutions/ holds::

    {"frame", "timestamp_us", "width", "height",
     "objects": [{"kind": "hand"|"face"|"pose", "label", "score",
                  "landmarks": [[x, y, z(, visibility)], ...], "world_landmarks": [...]}]}

with x, y in source pixels.  Measures (issue 9's fidelity criteria):

* per frame, the same number of objects (:func:`compare_frames`);
* objects paired by the Hungarian method on the IoU of their landmarks' boxes (same kind only; pairs
  whose boxes do not overlap stay unpaired) (:func:`match_objects`);
* for each pair, the mean x-y distance of corresponding landmarks as a fraction of the reference
  object's size, the diagonal of its landmarks' box (:func:`landmark_error`).  Pose landmarks count only
  where the reference's visibility is >= 0.5, and the box is over those same landmarks: MediaPipe places
  invisible pose landmarks far outside the frame (the legs of a head-and-shoulders shot), which would
  make the box, and so the tolerance, several times the person's visible size;
* a frame *agrees* when the counts are equal and every pair is within the kind's tolerance
  (:data:`TOLERANCE`: 2% face, 5% hand and pose) (:func:`summarize`);
* masks (uint8, 0..255 for 0..1) compared by the IoU of their >= 0.5 regions (:func:`mask_iou`).

Needs only NumPy (1 or 2) and, for matching more than one object, SciPy; it also runs in MediaPipe's
own NumPy-1 environment (scripts/make_mediapipe_solution_reference.py imports it by path).
"""
from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TOLERANCE = {"face": 0.02, "hand": 0.05, "pose": 0.05}
MIN_VISIBILITY = 0.5
MASK_THRESHOLD = 128  # uint8 value of 0.5, rounded up: a pixel is foreground when mask >= 128


def read_jsonl(path) -> list[dict]:
    """The rows of a JSON-lines file (``.jsonl`` or gzipped ``.jsonl.gz``), in order."""
    with (gzip.open(path, "rt") if str(path).endswith(".gz") else open(path)) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_masks(path) -> dict:
    """A reference masks ``.npz`` as a dict of arrays: ``masks`` (N, H, W) uint8 (0 or 255, unpacked
    from ``masks_bits``), ``frame``, ``timestamp_us``, ``has_mask`` (N,) (False where the solution gave
    no mask, e.g. pose with nobody found)."""
    with np.load(path) as data:
        out = {key: data[key] for key in data.files}
    if "masks_bits" in out:
        n, h, w = (int(v) for v in out.pop("shape"))
        bits = np.unpackbits(out.pop("masks_bits"), axis=-1, count=w).astype(bool)
        out["masks"] = np.where(bits, np.uint8(255), np.uint8(0)).reshape(n, h, w)
    return out


def read_mask_dir(path) -> np.ndarray:
    """The 8-bit PNG masks a graph's ``--masks DIR`` writes (``frame_000000.png``, ...), in frame order,
    as an (N, H, W) uint8 stack (needs OpenCV)."""
    import cv2

    files = sorted(Path(path).glob("frame_*.png"))
    if not files:
        raise FileNotFoundError(f"{path}: no frame_*.png masks")
    masks = [cv2.imread(str(f), cv2.IMREAD_UNCHANGED) for f in files]
    for f, m in zip(files, masks):
        if m is None or m.ndim != 2 or m.dtype != np.uint8:
            raise ValueError(f"{f}: not an 8-bit single-channel PNG")
    return np.stack(masks)


def _points(obj: dict, min_visibility: float | None, reference: dict | None = None) -> np.ndarray:
    """(N, 2) x-y of ``obj``'s landmarks; for pose, only those the reference (default: obj) sees."""
    pts = np.asarray(obj["landmarks"], dtype=np.float64)
    if pts.size == 0:
        return pts.reshape(0, 2)
    keep = _visible(reference or obj, min_visibility)
    return pts[keep, :2] if keep is not None else pts[:, :2]


def _visible(obj: dict, min_visibility: float | None):
    """Boolean mask of landmarks to measure, or None for all (non-pose objects)."""
    if obj.get("kind") != "pose" or min_visibility is None:
        return None
    vis = np.asarray([lm[3] if len(lm) > 3 else 1.0 for lm in obj["landmarks"]], dtype=np.float64)
    return vis >= min_visibility


def landmark_box(obj: dict, min_visibility: float | None = MIN_VISIBILITY) -> list[float]:
    """[x1, y1, x2, y2] around the landmarks (pose: the visible ones; all if none is visible)."""
    pts = _points(obj, min_visibility)
    if len(pts) == 0:
        pts = np.asarray(obj["landmarks"], dtype=np.float64)[:, :2]
    return [float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())]


def object_size(obj: dict, min_visibility: float | None = MIN_VISIBILITY) -> float:
    """The diagonal of :func:`landmark_box`, in pixels."""
    x1, y1, x2, y2 = landmark_box(obj, min_visibility)
    return math.hypot(x2 - x1, y2 - y1)


def landmark_error(reference: dict, test: dict, min_visibility: float | None = MIN_VISIBILITY) -> float:
    """Mean x-y landmark distance as a fraction of the reference's :func:`object_size`.

    NaN when nothing can be measured (no pose landmark visible in the reference).
    """
    if len(reference["landmarks"]) != len(test["landmarks"]):
        raise ValueError(f"{reference.get('kind')} landmark counts differ: "
                         f"{len(reference['landmarks'])} vs {len(test['landmarks'])}")
    ref = _points(reference, min_visibility)
    got = _points(test, min_visibility, reference=reference)
    size = object_size(reference, min_visibility)
    if len(ref) == 0 or size <= 0:
        return math.nan
    return float(np.linalg.norm(ref - got, axis=1).mean() / size)


def box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_objects(reference: list[dict], test: list[dict]) -> list[tuple[int, int]]:
    """Pairs (i, j) of reference and test objects of the same kind with overlapping landmark boxes,
    chosen to maximise the total box IoU."""
    if not reference or not test:
        return []
    iou = np.zeros((len(reference), len(test)))
    for i, r in enumerate(reference):
        for j, t in enumerate(test):
            if r["kind"] == t["kind"]:
                iou[i, j] = box_iou(landmark_box(r), landmark_box(t))
    if iou.shape == (1, 1):
        rows, cols = [0], [0]
    else:
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(-iou)
    return [(int(i), int(j)) for i, j in zip(rows, cols) if iou[i, j] > 0]


@dataclass
class FrameComparison:
    frame: int
    reference_count: int
    test_count: int
    errors: list = field(default_factory=list)  # (kind, error) per matched pair
    unmatched_reference: int = 0
    unmatched_test: int = 0

    @property
    def counts_equal(self) -> bool:
        return self.reference_count == self.test_count

    def agrees(self, tolerance: dict | float | None = None) -> bool:
        """Counts equal, every object paired, and each pair within its kind's tolerance."""
        if not self.counts_equal or self.unmatched_reference or self.unmatched_test:
            return False
        for kind, err in self.errors:
            tol = tolerance if isinstance(tolerance, (int, float)) else (tolerance or TOLERANCE)[kind]
            if not err <= tol and not math.isnan(err):  # NaN: nothing measurable, not a failure
                return False
        return True


def compare_frames(reference: list[dict], test: list[dict]) -> list[FrameComparison]:
    """One :class:`FrameComparison` per frame; the runs must cover the same frames at the same size."""
    if len(reference) != len(test):
        raise ValueError(f"frame counts differ: {len(reference)} reference vs {len(test)} test")
    out = []
    for ref_row, test_row in zip(reference, test):
        if (ref_row["width"], ref_row["height"]) != (test_row["width"], test_row["height"]):
            raise ValueError(f"frame {ref_row['frame']}: size {ref_row['width']}x{ref_row['height']} "
                             f"vs {test_row['width']}x{test_row['height']}")
        ref_objs, test_objs = ref_row["objects"], test_row["objects"]
        pairs = match_objects(ref_objs, test_objs)
        out.append(FrameComparison(
            frame=ref_row["frame"], reference_count=len(ref_objs), test_count=len(test_objs),
            errors=[(ref_objs[i]["kind"], landmark_error(ref_objs[i], test_objs[j])) for i, j in pairs],
            unmatched_reference=len(ref_objs) - len(pairs), unmatched_test=len(test_objs) - len(pairs)))
    return out


@dataclass
class Summary:
    frames: int
    count_agreement: float  # fraction of frames with equal object counts
    agreement: float  # fraction of frames that agree (FrameComparison.agrees)
    pairs: int
    median_error: float  # over all matched pairs; NaN when there are none
    max_error: float

    def line(self) -> str:
        return (f"{self.frames} frames, counts equal {100 * self.count_agreement:.1f}%, "
                f"agree {100 * self.agreement:.1f}%, {self.pairs} pairs, error median "
                f"{100 * self.median_error:.2f}% max {100 * self.max_error:.2f}%")


def summarize(comparisons: list[FrameComparison], tolerance: dict | float | None = None) -> Summary:
    errs = [e for c in comparisons for _, e in c.errors if not math.isnan(e)]
    n = max(1, len(comparisons))
    return Summary(
        frames=len(comparisons),
        count_agreement=sum(c.counts_equal for c in comparisons) / n,
        agreement=sum(c.agrees(tolerance) for c in comparisons) / n,
        pairs=len(errs),
        median_error=float(np.median(errs)) if errs else math.nan,
        max_error=float(max(errs)) if errs else math.nan,
    )


def mask_iou(a: np.ndarray, b: np.ndarray, threshold: int = MASK_THRESHOLD) -> float:
    """IoU of the ``>= threshold`` regions of two uint8 masks of one size; 1.0 when both are empty."""
    if a.shape != b.shape:
        raise ValueError(f"mask sizes differ: {a.shape} vs {b.shape}")
    fa, fb = a >= threshold, b >= threshold
    union = np.count_nonzero(fa | fb)
    return 1.0 if union == 0 else np.count_nonzero(fa & fb) / union


def mask_ious(a: np.ndarray, b: np.ndarray, threshold: int = MASK_THRESHOLD) -> np.ndarray:
    """Per-frame :func:`mask_iou` of two (N, H, W) stacks."""
    if a.shape != b.shape:
        raise ValueError(f"mask stacks differ: {a.shape} vs {b.shape}")
    return np.asarray([mask_iou(x, y, threshold) for x, y in zip(a, b)])
