"""Tracking evaluation on motmetrics' bundled MOTChallenge sequences (TUD-Campus, TUD-Stadtmitte).

A tracker is fed the boxes of the sequence's `test.txt` (another tracker's output) with the ids removed,
frame by frame, and its ids are scored against `gt.txt` with motmetrics (through tests/tracking_eval.py).
Shared by the tests and `benchmarks/tracking.py`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.types import Detections

WIDTH, HEIGHT = 640, 480  # TUD sequences
NOISY_SEED = 2024
NOISY_DROP = 0.10  # fraction of boxes removed
NOISY_JITTER = 0.02  # std of each edge's shift, as a fraction of the box's width or height


@dataclass
class Sequence:
    name: str
    num_frames: int
    boxes: dict[int, np.ndarray]  # frame (from 1) -> (N, 4) xyxy pixels, without ids
    ids: dict[int, np.ndarray]  # frame -> (N,) the original tracker's ids, for scoring it
    gt_path: Path


def _read(path: Path) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    boxes, ids = {}, {}
    for frame in np.unique(rows[:, 0]).astype(int):
        r = rows[rows[:, 0] == frame]
        boxes[frame] = np.column_stack([r[:, 2], r[:, 3], r[:, 2] + r[:, 4], r[:, 3] + r[:, 5]])
        ids[frame] = r[:, 1].astype(np.int64)
    return boxes, ids


def load_sequence(folder: Path, variant: str = "clean") -> Sequence:
    """`variant` "clean": test.txt as given; "noisy": 10% of boxes dropped at random and every edge jittered
    by ~2% of the box size (fixed seed, so every tracker sees the same boxes)."""
    boxes, ids = _read(folder / "test.txt")
    gt_frames = np.loadtxt(folder / "gt.txt", delimiter=",", ndmin=2)[:, 0]
    num_frames = int(max(gt_frames.max(), max(boxes)))
    if variant == "noisy":
        rng = np.random.default_rng(NOISY_SEED)
        for frame in sorted(boxes):
            b = boxes[frame]
            keep = rng.random(len(b)) >= NOISY_DROP
            size = np.tile(b[:, 2:] - b[:, :2], 2)
            b = b + rng.normal(0.0, NOISY_JITTER, b.shape) * size
            boxes[frame], ids[frame] = b[keep], ids[frame][keep]
    elif variant != "clean":
        raise ValueError(f"variant must be 'clean' or 'noisy', got {variant!r}")
    return Sequence(folder.name, num_frames, boxes, ids, folder / "gt.txt")


def detections(seq: Sequence, frame: int) -> Detections:
    """The frame's boxes as relative Detections; test.txt has no scores (-1), so every box scores 1."""
    b = seq.boxes.get(frame, np.zeros((0, 4)))
    scale = np.array([WIDTH, HEIGHT, WIDTH, HEIGHT], np.float64)
    return Detections((b / scale).astype(np.float32), np.ones(len(b), np.float32))


def run_tracker(seq: Sequence, every: int = 1, **options) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """TrackerCalculator through CalculatorRunner, ticked on every frame, detections on every `every`th.
    Returns frame -> (track ids, xyxy pixels) of its DETECTIONS output."""
    import yaml

    from pipelines.testing import CalculatorRunner

    runner = CalculatorRunner(yaml.safe_dump({"calculator": "TrackerCalculator", "options": options}))
    frames = range(1, seq.num_frames + 1)
    out = runner.run({
        "TICK": [(f, f) for f in frames],
        "DETECTIONS": [(f, detections(seq, f)) for f in frames if (f - 1) % every == 0],
    })
    scale = np.array([WIDTH, HEIGHT, WIDTH, HEIGHT], np.float64)
    return {p.timestamp: (p.payload.track_ids, p.payload.xyxy.astype(np.float64) * scale)
            for p in out["DETECTIONS"]}


def original_ids(seq: Sequence) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """test.txt's own ids (on the variant's boxes), as a tracker's output."""
    return {f: (seq.ids[f], seq.boxes[f]) for f in seq.boxes}


def score(seq: Sequence, hypotheses: dict[int, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """mota, idf1, idsw, fp, fn against gt.txt, with tests/tracking_eval.py's scoring (IoU >= 0.5)."""
    from tracking_eval import read_mot
    from tracking_eval import score as mot_score

    hyps = {f: list(zip(np.asarray(ids).tolist(), np.asarray(boxes, np.float64).reshape(-1, 4).tolist()))
            for f, (ids, boxes) in hypotheses.items()}
    return mot_score(read_mot(seq.gt_path), hyps, seq.num_frames)


THINNED_GRAPH = """
inputs: [frame_ticks, all_detections]
outputs: [tracked_detections]
nodes:
  # The detector would run on every `every`th frame only: drop the boxes of the others.
  - calculator: PacketThinnerCalculator
    inputs: {{IN: all_detections}}
    outputs: {{OUT: detector_detections}}
    options: {{every: {every}}}
  # Ticked on every frame, so frames without detections get predicted boxes.
  - calculator: TrackerCalculator
    inputs: {{DETECTIONS: detector_detections, TICK: frame_ticks}}
    outputs: {{DETECTIONS: tracked_detections}}
"""


def run_thinned_graph(seq: Sequence, every: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The boxes of every frame through PacketThinnerCalculator(every) and TrackerCalculator in one graph."""
    from pipelines import Graph, Packet, parse_graph

    graph = Graph(parse_graph(THINNED_GRAPH.format(every=every), "<thinned tracking>"))
    frames = range(1, seq.num_frames + 1)
    out = graph.run({"frame_ticks": [Packet(f, f) for f in frames],
                     "all_detections": [Packet(f, detections(seq, f)) for f in frames]},
                    outputs=["tracked_detections"], timeout=60)
    scale = np.array([WIDTH, HEIGHT, WIDTH, HEIGHT], np.float64)
    return {p.timestamp: (p.payload.track_ids, p.payload.xyxy.astype(np.float64) * scale)
            for p in out["tracked_detections"]}
