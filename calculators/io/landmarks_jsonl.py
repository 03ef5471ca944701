"""LandmarksJsonlCalculator: one JSON line of pixel-space landmarks per frame (issue 9's solution schema)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines import Calculator, Input, OutputFile, register_calculator
from pipelines.errors import OutputWriteError
from pipelines.types import Frame, Landmarks

_KINDS = ("hand", "face", "pose")


@register_calculator
class LandmarksJsonlCalculator(Calculator):
    """Writes one line per frame, flushed as it goes, with x, y in source pixels and z scaled like x
    (MediaPipe's convention, z * width); a landmark with visibility gets it as a fourth value:

        {"frame": 0, "timestamp_us": 0, "width": 320, "height": 240,
         "objects": [{"kind": "hand", "label": "Left", "score": 0.92, "landmarks": [[x, y, z], ...],
                      "world_landmarks": [[x, y, z], ...]}]}

    `label` and `score` come from HANDEDNESS (one Classification per object, in order), else they are null.
    World landmarks (metres) take the image landmarks' visibility when they have none of their own (MediaPipe
    copies it). With `stream_name` set (run-graph sets it per stream when it runs several in one process) each
    line starts with `"stream": NAME`. A frame without a LANDMARKS packet gets `"objects": []`: the file has a line for every frame.

    Ports:
        LANDMARKS (list of Landmarks, or one), WORLD_LANDMARKS (list, optional), HANDEDNESS (list of
        Classification, optional), IMAGE (Frame: size, frame number) -> (sink, no outputs)

    Example node:
        - calculator: LandmarksJsonlCalculator
          name: landmarks_writer
          inputs: {LANDMARKS: multi_hand_landmarks, HANDEDNESS: multi_handedness, IMAGE: image}
          options: {path: hands.jsonl, kind: hand}
    """

    @dataclass(frozen=True)
    class Options:
        path: OutputFile
        kind: str = "hand"
        decimals: int = 3  # pixels; world landmarks get 5 (metres)
        stream_name: str = ""  # "": no "stream" field

        def __post_init__(self):
            if not str(self.path).strip():
                raise ValueError("path must name the output file, e.g. out/landmarks.jsonl; got ''")
            if self.kind not in _KINDS:
                raise ValueError(f"kind must be one of {', '.join(_KINDS)}, got {self.kind!r}")
            if not 0 <= self.decimals <= 6:
                raise ValueError(f"decimals must be 0..6, got {self.decimals}")

    LANDMARKS = Input[Any]("LANDMARKS")
    WORLD_LANDMARKS = Input[Any]("WORLD_LANDMARKS").optional()
    HANDEDNESS = Input[Any]("HANDEDNESS").optional()
    IMAGE = Input[Frame]("IMAGE")

    def open(self, ctx):
        self._path = Path(self.options.path)
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._path.open("w", encoding="utf-8", buffering=1)  # line-buffered: a killed run keeps lines
        except OSError as exc:
            raise self._failed(exc) from exc

    def process(self, ctx):
        frame = ctx.get(self.IMAGE)
        if frame is None:
            return
        objects = _as_list(ctx.get(self.LANDMARKS))
        world = _as_list(ctx.get(self.WORLD_LANDMARKS))
        labels = list(ctx.get(self.HANDEDNESS) or ())
        rows = []
        for i, landmarks in enumerate(objects):
            label = labels[i] if i < len(labels) else None
            rows.append({
                "kind": self.options.kind,
                "label": None if label is None else label.label,
                "score": None if label is None else round(float(label.score), 4),
                "landmarks": self._pixels(landmarks, frame),
                "world_landmarks": self._world(world[i], landmarks) if i < len(world) else [],
            })
        record = {"stream": self.options.stream_name} if self.options.stream_name else {}
        record.update(frame=frame.index, timestamp_us=ctx.timestamp, width=frame.width, height=frame.height,
                      objects=rows)
        try:
            self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        except OSError as exc:
            raise self._failed(exc) from exc

    def _pixels(self, landmarks: Landmarks, frame: Frame) -> list:
        scale = np.array([frame.width, frame.height, frame.width], np.float64) if landmarks.relative else 1.0
        return _rows(landmarks.xyz.astype(np.float64) * scale, landmarks.visibility, self.options.decimals)

    def _world(self, world: Landmarks, landmarks: Landmarks) -> list:
        visibility = world.visibility if world.visibility is not None else landmarks.visibility
        if visibility is not None and len(visibility) != len(world):
            visibility = None
        return _rows(world.xyz.astype(np.float64), visibility, 5)

    def _failed(self, exc: OSError) -> OutputWriteError:
        reason = exc.strerror or str(exc)
        return OutputWriteError(f"cannot write {self._path}: {reason[:1].lower()}{reason[1:]}")

    def close(self, ctx):
        file, self._file = getattr(self, "_file", None), None
        if file is not None:
            try:
                file.close()
            except OSError as exc:
                raise self._failed(exc) from exc


def _as_list(value) -> list:
    if isinstance(value, Landmarks):
        return [value]
    return [v for v in (value or ()) if isinstance(v, Landmarks)]


def _rows(xyz: np.ndarray, visibility, decimals: int) -> list:
    if visibility is not None:
        xyz = np.column_stack([xyz, np.asarray(visibility, np.float64)])
    return np.round(xyz, decimals).tolist()
