"""Box overlap and the assignment of detections to tracks."""
from __future__ import annotations

import numpy as np


def require_scipy():
    """scipy's linear_sum_assignment, imported on first use: it takes ~0.2 s, and graphs without a tracker
    (and `run-graph --help`) should not pay for it."""
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError as exc:
        raise ImportError(f"tracking needs scipy for the assignment of detections to tracks ({exc}); "
                          "pip install scipy") from exc
    return linear_sum_assignment


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in `a` (N, 4) with every box in `b` (M, 4), both xyxy: (N, M)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def linear_assignment(cost: np.ndarray, limit: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Minimum-cost matching of rows to columns where a pair may cost at most `limit`.

    Returns (matches, unmatched rows, unmatched columns). Like lapjv's `cost_limit` (what ByteTrack uses),
    leaving a row and a column unmatched costs `limit`, so the solver never takes a worse pair to match
    more of them. Done by padding the matrix with a dummy partner per row and per column at `limit / 2`.
    """
    n, m = cost.shape
    if n == 0 or m == 0:
        return [], list(range(n)), list(range(m))
    big = limit + 1e6  # forbidden pairs: costlier than leaving both unmatched
    padded = np.full((n + m, m + n), big)
    padded[:n, :m] = np.where(cost <= limit, cost, big)
    padded[np.arange(n), m + np.arange(n)] = limit / 2  # row i alone
    padded[n + np.arange(m), np.arange(m)] = limit / 2  # column j alone
    padded[n:, m:] = 0.0  # dummies matched to dummies
    rows, cols = require_scipy()(padded)
    matches = [(int(r), int(c)) for r, c in zip(rows, cols) if r < n and c < m and cost[r, c] <= limit]
    matched_rows = {r for r, _ in matches}
    matched_cols = {c for _, c in matches}
    return (matches, [r for r in range(n) if r not in matched_rows], [c for c in range(m) if c not in matched_cols])
