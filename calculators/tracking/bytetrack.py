"""ByteTrack (Zhang et al., ECCV 2022): associate every detection box, the low-score ones too.

Per detector run: (1) high-score detections against tracked and lost tracks, by IoU with the predicted
boxes; (2) low-score detections against the tracked tracks left over, which recovers occluded objects
that the detector still sees faintly without starting tracks from its noise; (3) the remaining
high-score detections against unconfirmed tracks (born on the previous run); (4) a new track for each
detection still unmatched that scores at least `new_track_thresh`. Lost tracks are kept `track_buffer`
runs, and a lost track that overlaps a tracked one almost entirely is a duplicate and is dropped.
"""
from __future__ import annotations

import numpy as np

from .matching import iou_matrix, linear_assignment
from .track import Track, TrackerBase

# ByteTrack's fixed cost limits (1 - IoU) for the second and third associations: low-score boxes must
# overlap a track well (IoU >= 0.5) to be trusted; an unconfirmed track has one box and no velocity yet,
# so its prediction is rougher (IoU >= 0.3).
_LOW_MATCH_THRESH = 0.5
_UNCONFIRMED_MATCH_THRESH = 0.7
_DUPLICATE_THRESH = 0.15


class ByteTracker(TrackerBase):
    def __init__(self, track_thresh: float = 0.5, low_thresh: float = 0.1, new_track_thresh: float = 0.6,
                 match_thresh: float = 0.8, track_buffer: int = 30, min_hits: int = 2):
        super().__init__(min_hits)
        self.track_thresh = track_thresh
        self.low_thresh = low_thresh
        self.new_track_thresh = new_track_thresh
        self.match_thresh = match_thresh
        self.track_buffer = track_buffer

    def _associate(self, boxes: np.ndarray, scores: np.ndarray) -> None:
        high = np.flatnonzero(scores >= self.track_thresh)
        low = np.flatnonzero((scores > self.low_thresh) & (scores < self.track_thresh))
        unconfirmed = [t for t in self.tracks if not t.confirmed]
        pool = [t for t in self.tracks if t.confirmed]

        # 1. High-score detections against confirmed tracks, tracked or lost.
        left_tracks, left_high = self._match(pool, boxes, scores, high, self.match_thresh)
        # 2. Low-score detections against the tracks that were tracked until now; the others are lost.
        was_lost = [t for t in left_tracks if not t.tracked]
        unmatched, _ = self._match([t for t in left_tracks if t.tracked], boxes, scores, low, _LOW_MATCH_THRESH)
        for track in unmatched + was_lost:
            track.miss()
        # 3. Unconfirmed tracks get one chance with the rest of the high-score detections.
        unmatched, left_high = self._match(unconfirmed, boxes, scores, left_high, _UNCONFIRMED_MATCH_THRESH)
        dead = {id(t) for t in unmatched}
        # 4. New tracks from confident leftovers.
        for i in left_high:
            if scores[i] >= self.new_track_thresh:
                self._start(boxes[i], scores[i], int(i))
        self.tracks = [t for t in self.tracks if id(t) not in dead and t.lost_runs <= self.track_buffer]
        self._drop_duplicates()

    def _match(self, tracks: list[Track], boxes: np.ndarray, scores: np.ndarray, candidates: np.ndarray,
               limit: float) -> tuple[list[Track], np.ndarray]:
        """Match `tracks` to detections `candidates` (indices); update the matched ones. Returns the tracks and
        detection indices left over."""
        if not tracks or not len(candidates):
            return list(tracks), candidates
        cost = 1.0 - iou_matrix(self._predicted_boxes(tracks), boxes[candidates])
        matches, left_rows, left_cols = linear_assignment(cost, limit)
        for r, c in matches:
            track, i = tracks[r], int(candidates[c])
            track.match(self.kf, boxes[i], scores[i], i)
            if track.hits >= self.min_hits:
                track.confirmed = True
        return [tracks[r] for r in left_rows], candidates[left_cols]

    def _drop_duplicates(self) -> None:
        """A lost track and a tracked one on the same object: keep the older (ByteTrack's remove_duplicate)."""
        tracked = [t for t in self.tracks if t.tracked]
        lost = [t for t in self.tracks if not t.tracked]
        if not tracked or not lost:
            return
        overlap = 1.0 - iou_matrix(np.stack([t.xyxy for t in tracked]), np.stack([t.xyxy for t in lost]))
        drop = set()
        for p, q in zip(*np.nonzero(overlap < _DUPLICATE_THRESH)):
            a, b = tracked[p], lost[q]
            drop.add(id(b) if a.start_run < b.start_run else id(a))
        self.tracks = [t for t in self.tracks if id(t) not in drop]
