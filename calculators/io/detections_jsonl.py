"""DetectionsJsonlCalculator: one JSON line of pixel-space detections per frame."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from pipelines import Calculator, Input, OutputFile, register_calculator
from pipelines.errors import OutputWriteError
from pipelines.types import Detections, Frame

log = logging.getLogger("framegraph.io.detections_jsonl")


@register_calculator
class DetectionsJsonlCalculator(Calculator):
    """Writes one line per frame, in pixels of the source frame, flushed as it goes (a killed run keeps
    every finished line):

        {"frame": 0, "timestamp_us": 0, "width": 320, "height": 240,
         "detections": [{"xyxy": [x1, y1, x2, y2], "score": 0.95, "label": "face",
                         "keypoints": [[x, y], ...], "track_id": 3}]}

    `keypoints` is left out when the detections have none, `track_id` when they are not tracked. With
    `stream_name` set (run-graph sets it per stream when it runs several in one process) each line starts with
    `"stream": NAME`. A frame
    with no DETECTIONS packet at its timestamp gets `"detections": []`, so the file has a line for every frame.

    A line that cannot be written (full disk) raises `OutputWriteError` ("cannot write dets.jsonl: no space left
    on device") and is cut off again, so the file holds whole lines only.

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
        path: OutputFile
        label: str = "face"  # for detections that carry no labels of their own
        decimals: int = 2  # rounding of coordinates and scores
        stream_name: str = ""  # "": no "stream" field

        def __post_init__(self):
            if not str(self.path).strip():
                raise ValueError("path must name the output file, e.g. out/detections.jsonl; got ''")
            if not 0 <= self.decimals <= 6:
                raise ValueError(f"decimals must be 0..6, got {self.decimals}")

    DETECTIONS = Input[Detections]("DETECTIONS")
    IMAGE = Input[Frame]("IMAGE")

    def open(self, ctx):
        self._path = Path(self.options.path)
        self._file = None
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            # Unbuffered: each line reaches the OS as it is written (a killed run keeps it), and nothing waits
            # in a buffer to fail again at close.
            self._file = self._path.open("wb", buffering=0)
        except OSError as exc:
            raise self._write_failed(exc) from exc
        self._end = 0  # bytes in the file: the end of its last whole line
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
        record = {"stream": self.options.stream_name} if self.options.stream_name else {}
        record |= {"frame": frame.index, "timestamp_us": ctx.timestamp, "width": frame.width,
                  "height": frame.height, "detections": self._rows(dets, frame) if dets is not None else []}
        self._write((json.dumps(record, separators=(", ", ": ")) + "\n").encode("utf-8"))

    def _write(self, line: bytes) -> None:
        try:
            view = memoryview(line)
            while view:  # a raw write may take part of the line (the disk filled up half way)
                view = view[self._file.write(view):]
        except OSError as exc:
            self._cut_partial_line()
            raise self._write_failed(exc) from exc
        self._end += len(line)

    def _cut_partial_line(self) -> None:
        try:  # a regular file is cut back; a device such as /dev/full has nothing to cut
            if self._file.seekable() and self._file.seek(0, os.SEEK_END) > self._end:
                self._file.truncate(self._end)
                self._file.seek(self._end)
        except OSError as exc:
            log.warning("%s: cannot cut off the partial last line: %s", self._path, exc)

    def _write_failed(self, exc: OSError) -> OutputWriteError:
        reason = exc.strerror or str(exc)
        error = OutputWriteError(f"cannot write {self._path}: {reason[:1].lower()}{reason[1:]}")
        error.errno = exc.errno
        return error

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
        file, self._file = getattr(self, "_file", None), None
        if file is not None:
            try:
                file.close()
            except OSError as exc:
                raise self._write_failed(exc) from exc
