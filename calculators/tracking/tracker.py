from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Detections, Frame, Tracks

from .bytetrack import ByteTracker
from .matching import require_scipy
from .sort import SortTracker

ALGORITHMS = ("bytetrack", "sort")
_DEFAULT_MIN_HITS = {"bytetrack": 2, "sort": 3}
_F32 = np.float32


@register_calculator
class TrackerCalculator(Calculator):
    """Follows detections over time and gives each object a track id (ByteTrack or SORT).

    Connect the frame stream to TICK so the tracker runs on every frame. At a timestamp with DETECTIONS
    it predicts every track one frame ahead and matches the detections to the predictions; at a timestamp
    with only TICK the detector did not run (a PacketThinnerCalculator upstream), so it only predicts. An
    empty Detections means the detector ran and found nothing: tracks are then missed, not just predicted.
    Without TICK the tracker steps on detector runs only.

    TRACKS holds every live track, lost ones included until `track_buffer` (bytetrack) or `max_age` (sort)
    detector runs pass without a match, each with its measured box when matched at this timestamp and its
    predicted box otherwise: an anonymizer covers those so a face stays hidden on frames the detector
    missed. DETECTIONS holds the confirmed tracks currently tracked, with `track_ids` set: the measured
    boxes, scores and keypoints of the matched detections on detector runs (in detection order), the
    predicted boxes with no keypoints (K = 0) in between. Both are sent at every timestamp processed.

    Ids start at 1 and are never reused; a track gets its id when it starts, so the ids of tracks that
    never got confirmed are skipped. Boxes may be relative or pixels (the outputs keep the input's); for
    relative boxes the motion model measures x in units of the frame height, using the width/height of
    the TICK at the first timestamp when it is a Frame (else it assumes a square frame, which only changes
    the noise model: IoU is the same in any units).

    Ports:
        DETECTIONS (Detections, optional), TICK (Any, optional) -> TRACKS (Tracks), DETECTIONS (Detections)

    Example node:
        # Detect on every third frame; the tracker carries the boxes (and ids) across the frames between.
        - calculator: TrackerCalculator
          inputs: {DETECTIONS: face_detections, TICK: input_video}
          outputs: {TRACKS: face_tracks, DETECTIONS: tracked_faces}
          options: {algorithm: bytetrack, track_buffer: 30}
    """

    @dataclass(frozen=True)
    class Options:
        algorithm: str = "bytetrack"  # "bytetrack" or "sort"
        track_thresh: float = 0.5  # bytetrack: first-stage ("high") score; sort: the least score used at all
        low_thresh: float = 0.1  # bytetrack: scores above this may continue a track (second stage)
        new_track_thresh: float = 0.6  # bytetrack: an unmatched detection starts a track from this score
        match_thresh: float = 0.8  # the largest cost 1 - IoU accepted in the main association (0.8: IoU >= 0.2)
        # bytetrack: detector runs (not frames, so thinning the detector does not shorten it) a lost track is kept
        track_buffer: int = 30
        min_hits: int = 0  # consecutive matches that confirm a track; 0: the algorithm's (bytetrack 2, sort 3)
        # sort: detector runs a track is kept without a match. The paper's 1 drops a person after one missed
        # detection, so TRACKS would stop covering them; 30 matches bytetrack's buffer.
        max_age: int = 30
        trail_length: int = 30  # box centres kept per track in Tracks.trails; 0: no trails

        def __post_init__(self):
            if self.algorithm not in ALGORITHMS:
                raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
            if not 0.0 <= self.low_thresh <= self.track_thresh <= 1.0:
                raise ValueError("expected 0 <= low_thresh <= track_thresh <= 1, got "
                                 f"low_thresh={self.low_thresh}, track_thresh={self.track_thresh}")
            if not 0.0 <= self.new_track_thresh <= 1.0:
                raise ValueError(f"new_track_thresh must be in [0, 1], got {self.new_track_thresh}")
            if not 0.0 < self.match_thresh <= 1.0:
                raise ValueError(f"match_thresh (a 1 - IoU cost) must be in (0, 1], got {self.match_thresh}")
            for name in ("track_buffer", "min_hits", "max_age", "trail_length"):
                if getattr(self, name) < 0:
                    raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    DETECTIONS = Input[Detections]("DETECTIONS").optional()
    TICK = Input[Any]("TICK").optional()
    TRACKS = Output[Tracks]("TRACKS")
    TRACKED = Output[Detections]("DETECTIONS")

    def open(self, ctx):
        require_scipy()  # fail before the first frame, with an install hint
        o = self.options
        min_hits = o.min_hits or _DEFAULT_MIN_HITS[o.algorithm]
        if o.algorithm == "sort":
            self.tracker = SortTracker(o.track_thresh, o.match_thresh, min_hits, o.max_age)
        else:
            self.tracker = ByteTracker(o.track_thresh, o.low_thresh, o.new_track_thresh, o.match_thresh,
                                       o.track_buffer, min_hits)
        self._aspect: float | None = None  # frame width / height, fixed at the first timestamp
        self._relative: bool | None = None
        self._trails: dict[int, deque] = {}
        self._labels: dict[int, str] = {}

    def process(self, ctx):
        dets: Detections | None = ctx.get(self.DETECTIONS)
        tick = ctx.get(self.TICK)
        if self._aspect is None:
            self._aspect = tick.width / tick.height if isinstance(tick, Frame) else 1.0
        if dets is not None:
            if self._relative is None:
                self._relative = dets.relative
            elif dets.relative != self._relative:
                raise ValueError("DETECTIONS: expected " + ("relative" if self._relative else "pixel")
                                 + " coordinates like the earlier packets, got "
                                 + ("relative" if dets.relative else "pixels"))
        # Relative x and y are fractions of different lengths; measure both in frame heights instead.
        scale = np.array([self._aspect, 1.0] * 2) if self._relative in (None, True) else np.ones(4)
        if dets is None:
            tracks = self.tracker.step()
        else:
            tracks = self.tracker.step(dets.xyxy.astype(np.float64) * scale, dets.scores)
            if dets.labels:
                for t in tracks:
                    if t.matched_index >= 0:
                        self._labels[t.track_id] = dets.labels[t.matched_index]
        boxes = np.array([t.xyxy for t in tracks]).reshape(-1, 4) / scale
        self._update_trails(tracks, boxes)
        ctx.send(self.TRACKS, self._tracks(tracks, boxes))
        ctx.send(self.TRACKED, self._tracked(tracks, boxes, dets))

    def _update_trails(self, tracks, boxes: np.ndarray) -> None:
        alive = {t.track_id for t in tracks}
        for memory in (self._trails, self._labels):  # forget the tracks that ended
            for tid in [tid for tid in memory if tid not in alive]:
                del memory[tid]
        if not self.options.trail_length:
            return
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        for t, centre in zip(tracks, centres):
            self._trails.setdefault(t.track_id, deque(maxlen=self.options.trail_length)).append(centre)

    def _tracks(self, tracks, boxes: np.ndarray) -> Tracks:
        ids = [t.track_id for t in tracks]
        return Tracks(
            np.array(ids, np.int64), boxes.astype(_F32), np.array([t.score for t in tracks], _F32),
            np.array([t.matched_index >= 0 for t in tracks], bool), np.array([t.lost_runs for t in tracks], np.int32),
            np.array([t.confirmed for t in tracks], bool),
            tuple(self._labels.get(tid, "") for tid in ids) if self._labels else (),
            tuple(np.array(self._trails[tid], _F32).reshape(-1, 2) for tid in ids) if self.options.trail_length else (),
            relative=self._relative is not False)

    def _tracked(self, tracks, boxes: np.ndarray, dets: Detections | None) -> Detections:
        rows = [i for i, t in enumerate(tracks) if t.confirmed and t.tracked]
        if dets is not None:  # detection order, so outputs line up with the detector's
            rows.sort(key=lambda i: tracks[i].matched_index)
        k = dets.keypoints.shape[1] if dets is not None and len(dets.keypoints) else 0
        keypoints = (dets.keypoints[[tracks[i].matched_index for i in rows]].astype(_F32) if k
                     else np.zeros((len(rows), 0, 2), _F32))
        return Detections(
            boxes[rows].astype(_F32).reshape(-1, 4), np.array([tracks[i].score for i in rows], _F32), keypoints,
            tuple(self._labels.get(tracks[i].track_id, "") for i in rows) if self._labels else (),
            np.array([tracks[i].track_id for i in rows], np.int64),
            relative=self._relative is not False)
