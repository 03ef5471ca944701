"""MOTChallenge-style scoring with motmetrics, shared by the tracking tests and benchmarks.

motmetrics 1.4's own IoU helper calls np.asfarray, which NumPy 2 removed; the distance matrix is made here.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def iou_distance(truth: np.ndarray, hyps: np.ndarray, max_distance: float = 0.5) -> np.ndarray:
    """1 - IoU between [x1, y1, x2, y2] rows; NaN (no match possible) where IoU < 1 - max_distance."""
    if len(truth) == 0 or len(hyps) == 0:
        return np.empty((len(truth), len(hyps)))
    tl = np.maximum(truth[:, None, :2], hyps[None, :, :2])
    br = np.minimum(truth[:, None, 2:], hyps[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    union = area(truth)[:, None] + area(hyps)[None, :] - inter
    distance = 1.0 - inter / np.maximum(union, 1e-12)
    distance[distance > max_distance] = np.nan
    return distance


def read_mot(path: Path) -> dict[int, list[tuple[int, list[float]]]]:
    """MOTChallenge text (frame, id, x, y, w, h, ...; frames from 1) -> {frame: [(id, xyxy)]}."""
    frames: dict[int, list[tuple[int, list[float]]]] = {}
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        f, tid, x, y, w, h = (float(v) for v in line.split(",")[:6])
        frames.setdefault(int(f), []).append((int(tid), [x, y, x + w, y + h]))
    return frames


def read_jsonl_tracks(path: Path) -> dict[int, list[tuple[int, list[float]]]]:
    """run-graph --detections output -> {frame (from 1): [(track_id, xyxy)]}."""
    frames = {}
    for line in Path(path).read_text().splitlines():
        record = json.loads(line)
        frames[record["frame"] + 1] = [(d["track_id"], d["xyxy"]) for d in record["detections"] if "track_id" in d]
    return frames


def score(truth: dict, hyps: dict, num_frames: int) -> dict[str, float]:
    """MOTA, IDF1, id switches, FP, FN over frames 1..num_frames."""
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=False)
    for f in range(1, num_frames + 1):
        t, h = truth.get(f, []), hyps.get(f, [])
        dist = iou_distance(np.array([b for _, b in t], float).reshape(-1, 4), np.array([b for _, b in h], float).reshape(-1, 4))
        acc.update([i for i, _ in t], [i for i, _ in h], dist, frameid=f)
    summary = mm.metrics.create().compute(acc, metrics=["mota", "idf1", "num_switches", "num_false_positives",
                                                         "num_misses"])
    row = summary.iloc[0]
    return {"mota": float(row["mota"]), "idf1": float(row["idf1"]), "idsw": int(row["num_switches"]),
            "fp": int(row["num_false_positives"]), "fn": int(row["num_misses"])}
