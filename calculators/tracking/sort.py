"""SORT (Bewley et al., ICIP 2016): one IoU association of the detections with the predicted tracks.

Every detection scoring at least `track_thresh` is matched to the tracks' predicted boxes; an unmatched
detection starts a track, which is reported once it has matched `min_hits` runs in a row (tracks born on
the first run at once) and stays reported while matched; a track unmatched for more than `max_age`
detector runs is deleted. Differences from the paper's code: a track, once confirmed, stays confirmed
(the paper re-counts hits after every miss, so a briefly occluded person vanishes for `min_hits` frames),
an unconfirmed track that misses a run is deleted at once (DeepSORT's rule against clutter), and the
defaults are IoU >= 0.2 and max_age 30 rather than 0.3 and 1, as for ByteTrack.
"""
from __future__ import annotations

import numpy as np

from .matching import iou_matrix, linear_assignment
from .track import TrackerBase


class SortTracker(TrackerBase):
    def __init__(self, track_thresh: float = 0.5, match_thresh: float = 0.8, min_hits: int = 3, max_age: int = 30):
        super().__init__(min_hits)
        self.track_thresh = track_thresh
        self.match_thresh = match_thresh
        self.max_age = max_age

    def _associate(self, boxes: np.ndarray, scores: np.ndarray) -> None:
        keep = np.flatnonzero(scores >= self.track_thresh)
        cost = 1.0 - iou_matrix(self._predicted_boxes(self.tracks), boxes[keep])
        matches, left_tracks, left_dets = linear_assignment(cost, self.match_thresh)
        for r, c in matches:
            track, i = self.tracks[r], int(keep[c])
            track.match(self.kf, boxes[i], scores[i], i)
            if track.hits >= self.min_hits:
                track.confirmed = True
        dead = set()
        for r in left_tracks:
            track = self.tracks[r]
            track.miss()
            if not track.confirmed or track.lost_runs > self.max_age:
                dead.add(id(track))
        self.tracks = [t for t in self.tracks if id(t) not in dead]
        for c in left_dets:
            i = int(keep[c])
            self._start(boxes[i], scores[i], i)
