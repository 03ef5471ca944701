"""A track's state, and what SORT and ByteTrack share: prediction, track start, id allocation."""
from __future__ import annotations

import numpy as np

from .kalman import KalmanBoxFilter, xyah_to_xyxy, xyxy_to_xyah


class Track:
    """One object followed over time. `lost_runs` counts detector runs since the last match (0: tracked);
    `matched_index` is the detection matched at the current step, or -1."""

    __slots__ = (
        "box",
        "confirmed",
        "cov",
        "hits",
        "lost_runs",
        "matched_index",
        "mean",
        "score",
        "start_run",
        "track_id",
    )

    def __init__(self, track_id: int, kf: KalmanBoxFilter, box: np.ndarray, score: float, index: int,
                 run: int, confirmed: bool):
        self.track_id = track_id
        self.mean, self.cov = kf.initiate(xyxy_to_xyah(box)[0])
        self.box = np.asarray(box, np.float64)  # the last measured box (xyxy)
        self.score = float(score)
        self.hits = 1  # consecutive detector runs with a match
        self.confirmed = confirmed
        self.lost_runs = 0
        self.start_run = run
        self.matched_index = index

    def match(self, kf: KalmanBoxFilter, box: np.ndarray, score: float, index: int) -> None:
        self.mean, self.cov = kf.update(self.mean, self.cov, xyxy_to_xyah(box)[0])
        self.box = np.asarray(box, np.float64)
        self.score = float(score)
        self.hits += 1
        self.lost_runs = 0
        self.matched_index = index

    def miss(self) -> None:
        self.lost_runs += 1
        self.hits = 0  # confirmation counts consecutive matches

    @property
    def tracked(self) -> bool:
        return self.lost_runs == 0

    @property
    def xyxy(self) -> np.ndarray:
        """The measured box when matched at this step, else the motion model's prediction."""
        return self.box if self.matched_index >= 0 else xyah_to_xyxy(self.mean[None])[0]

    def __repr__(self) -> str:
        return (f"Track(id={self.track_id}, xyxy={np.round(self.xyxy, 3).tolist()}, confirmed={self.confirmed}, "
                f"lost_runs={self.lost_runs})")


class TrackerBase:
    """Runs one step per frame: `step(boxes, scores)` on a detector run, `step()` on a frame it skipped.

    Boxes are xyxy in any units where x and y share a scale. `tracks` holds every live track afterwards.
    Subclasses implement `_associate(boxes, scores)`.
    """

    def __init__(self, min_hits: int):
        if min_hits < 1:
            raise ValueError(f"min_hits must be >= 1, got {min_hits}")
        self.min_hits = min_hits
        self.kf = KalmanBoxFilter()
        self.tracks: list[Track] = []
        self.runs = 0  # detector runs seen
        self._next_id = 1

    def step(self, boxes: np.ndarray | None = None, scores: np.ndarray | None = None) -> list[Track]:
        for track in self.tracks:
            track.matched_index = -1
        self._predict()
        if boxes is not None:
            boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
            scores = np.ones(len(boxes)) if scores is None else np.asarray(scores, np.float64).reshape(-1)
            if len(scores) != len(boxes):
                raise ValueError(f"expected one score per box ({len(boxes)}), got {len(scores)}")
            self.runs += 1
            self._associate(boxes, scores)
        return self.tracks

    def _associate(self, boxes: np.ndarray, scores: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self) -> None:
        if not self.tracks:
            return
        means = np.stack([t.mean for t in self.tracks])
        covs = np.stack([t.cov for t in self.tracks])
        # A lost object is as likely to have stopped growing as not: keep its size (ByteTrack does the same).
        lost = np.array([not t.tracked for t in self.tracks])
        means[lost, 7] = 0.0
        means, covs = self.kf.predict(means, covs)
        for track, mean, cov in zip(self.tracks, means, covs):
            track.mean, track.cov = mean, cov

    def _start(self, box: np.ndarray, score: float, index: int) -> Track:
        # Tracks born on the first detector run(s) are reported at once: there is no history to wait for.
        track = Track(self._next_id, self.kf, box, score, index, self.runs,
                      confirmed=self.runs <= 1 or self.min_hits <= 1)
        self._next_id += 1
        self.tracks.append(track)
        return track

    def _predicted_boxes(self, tracks: list[Track]) -> np.ndarray:
        return xyah_to_xyxy(np.stack([t.mean for t in tracks])) if tracks else np.zeros((0, 4))
