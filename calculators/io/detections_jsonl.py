"""DetectionsJsonlCalculator: one JSON line of pixel-space detections per frame."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pipelines import Calculator, Input, PipelineError, register_calculator
from pipelines.types import Detections, Frame


class DetectionsWriteError(PipelineError, OSError):
    """The detections file cannot be created or written."""


@register_calculator
class DetectionsJsonlCalculator(Calculator):
    """Writes one line per frame, in pixels of the source frame, flushed as it goes (a killed run keeps
    every finished line):

        {"frame": 0, "timestamp_us": 0, "width": 320, "height": 240,
         "detections": [{"xyxy": [x1, y1, x2, y2], "score": 0.95, "label": "face",
                         "keypoints": [[x, y], ...], "track_id": 3}]}

    `keypoints` is left out when the detections have none, `track_id` when they are not tracked. A frame
    with no DETECTIONS packet at its timestamp gets `"detections": []`, so the file has a line for every frame.

    Ports:
        DETECTIONS (Detections), IMAGE (Frame: pixel size and frame number) -> (sink, no outputs)

    Example node:
        # Detections for other tools; --detections on the command line sets the path and enables the node.
        - calculator: DetectionsJsonlCalculator
          name: detections_file
          inputs: {DETECTIONS: face_detections, IMAGE: input_video}
          options: {path: out/detections.jsonl}
    """

    @dataclass(frozen=True)
    class Options:
        path: str
        label: str = "face"  # for detections that carry no labels of their own
        decimals: int = 2  # rounding of coordinates and scores

        def __post_init__(self):
            if not str(self.path).strip():
                raise ValueError("path must name the output file, e.g. out/detections.jsonl; got ''")
            if not 0 <= self.decimals <= 6:
                raise ValueError(f"decimals must be 0..6, got {self.decimals}")

    DETECTIONS = Input[Detections]("DETECTIONS")
    IMAGE = Input[Frame]("IMAGE")

    def open(self, ctx):
        path = Path(self.options.path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("w", encoding="utf-8")
        except OSError as exc:
            raise DetectionsWriteError(f"detections file '{path}': cannot create it ({exc.strerror or exc}); "
                                       "check the folder is writable") from exc
        self._warned_no_image = False

    def process(self, ctx):
        frame: Frame | None = ctx.get(self.IMAGE)
        if frame is None:
            # Relative coordinates cannot become pixels without the frame; say so once rather than per frame.
            if not self._warned_no_image:
                self._warned_no_image = True
                ctx.logger.warning("detections at %s have no IMAGE at the same timestamp; such lines are "
                                   "skipped (warned once)", ctx.timestamp)
            return
        dets = ctx.get(self.DETECTIONS)
        record = {"frame": frame.index, "timestamp_us": ctx.timestamp, "width": frame.width,
                  "height": frame.height, "detections": self._rows(dets, frame) if dets is not None else []}
        self._file.write(json.dumps(record, separators=(", ", ": ")) + "\n")
        self._file.flush()

    def _rows(self, dets: Detections, frame: Frame) -> list[dict]:
        d = self.options.decimals
        px = dets.to_pixels(frame.width, frame.height)
        rows = []
        for i in range(len(px)):
            row = {"xyxy": [round(float(v), d) for v in px.xyxy[i]], "score": round(float(px.scores[i]), d),
                   "label": px.labels[i] if px.labels else self.options.label}
            if px.keypoints.size:
                row["keypoints"] = [[round(float(x), d), round(float(y), d)] for x, y in px.keypoints[i]]
            if px.track_ids is not None:
                row["track_id"] = int(px.track_ids[i])
            rows.append(row)
        return rows

    def close(self, ctx):
        file = getattr(self, "_file", None)
        if file is not None:
            file.close()
            self._file = None
