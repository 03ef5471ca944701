"""MediaPipeTasksCalculator: a MediaPipe Tasks model run whole, pre- and post-processing included."""
from __future__ import annotations

import importlib.util
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines import Calculator, EngineUnavailableError, Input, ModelError, Output, register_calculator
from pipelines.paths import InputFile
from pipelines.types import Detections, Frame

from .inference import find_model_file

# task -> (vision class, options class, what the model file must carry)
_TASKS = {
    "face_detector": ("FaceDetector", "FaceDetectorOptions",
                      ("a BlazeFace-style face detector .tflite with MediaPipe Tasks metadata (an image input with "
                       "normalization options), like assets/models/face_detection_short_range.tflite")),
    "object_detector": ("ObjectDetector", "ObjectDetectorOptions",
                        ("an object detector .tflite with ObjectDetector metadata: normalization options on the "
                         "input, BoundingBoxProperties on the location output, and for models without NMS the "
                         "DETECTOR_METADATA anchors and decoding options (MediaPipe's metadata writers add them; "
                         "scripts/make_face_detector_task.py shows how)")),
}
_RUNNING_MODES = ("image", "video")
_INSTALL_HINT = ('pip install "framegraph[mediapipe]" (mediapipe >= 0.10.30: the first releases that work with '
                 "NumPy 2)")


@register_calculator
class MediaPipeTasksCalculator(Calculator):
    """Runs a MediaPipe Tasks vision model on each frame, with MediaPipe's own pre- and post-processing
    (letterbox, anchors, decoding, non-max suppression): the same results as MediaPipe's Python Tasks API.

    `model` is a `.tflite` with Tasks metadata or a `.task` bundle; relative paths are looked up in the graph
    file's folder, then in the installed graph libraries. `task` names the Tasks API to use: face_detector or object_detector.
    `running_mode` image treats each frame on its own; video passes the packet timestamp (in ms) to MediaPipe,
    which requires it to increase: packets less than 1 ms apart are moved 1 ms on, with a warning.
    Detections come out relative to the frame, with one label per detection (the model's category name, or
    "face" for face_detector) and keypoints when the task gives them (face_detector: 6).

    Ports:
        IMAGE (Frame) -> DETECTIONS (Detections, relative; empty when nothing is found)

    Example node:
        # BlazeFace short range through MediaPipe itself, as a reference for the framegraph face subgraph.
        - name: mediapipe_face_detector
          calculator: MediaPipeTasksCalculator
          inputs: {IMAGE: throttled_video}
          outputs: {DETECTIONS: mediapipe_face_detections}
          options:
            model: assets/models/face_detection_short_range.tflite
            task: face_detector
            min_detection_confidence: 0.5
            running_mode: video
    """

    @dataclass(frozen=True)
    class Options:
        model: InputFile
        task: str = "face_detector"
        min_detection_confidence: float = 0.5
        min_suppression_threshold: float = 0.3
        max_results: int = -1  # object_detector: at most this many detections; -1 no limit
        running_mode: str = "image"  # or "video"

        def __post_init__(self):
            if self.task not in _TASKS:
                raise ValueError(f"task must be one of {', '.join(_TASKS)}, got {self.task!r} (other Tasks, "
                                 "e.g. face_landmarker, give landmarks and are not wired up yet)")
            if self.running_mode.lower() not in _RUNNING_MODES:
                raise ValueError(f"running_mode must be one of {', '.join(_RUNNING_MODES)}, "
                                 f"got {self.running_mode!r}")
            if not 0.0 <= self.min_detection_confidence <= 1.0:
                raise ValueError(f"min_detection_confidence must be in [0, 1], got {self.min_detection_confidence}")
            if not 0.0 <= self.min_suppression_threshold <= 1.0:
                raise ValueError(f"min_suppression_threshold must be in [0, 1], got {self.min_suppression_threshold}")
            if self.max_results == 0 or self.max_results < -1:
                raise ValueError(f"max_results must be -1 (no limit) or > 0, got {self.max_results}")

    IMAGE = Input[Frame]("IMAGE")
    DETECTIONS = Output[Detections]("DETECTIONS")

    def open(self, ctx):
        o = self.options
        self._where = f'node "{ctx.node_name}"'
        path = self._find_model(o.model)
        self._check_model_file(path)
        if not _mediapipe_installed():
            raise EngineUnavailableError(f"{self._where}: MediaPipeTasksCalculator needs mediapipe, which is not "
                                         f"installed; hint: {_INSTALL_HINT}")
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError as exc:
            raise EngineUnavailableError(f"{self._where}: mediapipe is installed but its Tasks API does not import "
                                         f"({exc}); hint: {_INSTALL_HINT}") from exc
        self._mp = mp
        self._video = o.running_mode.lower() == "video"
        class_name, options_name, needs = _TASKS[o.task]
        mode = vision.RunningMode.VIDEO if self._video else vision.RunningMode.IMAGE
        kwargs = {"base_options": BaseOptions(model_asset_path=str(path)), "running_mode": mode}
        if o.task == "face_detector":
            kwargs.update(min_detection_confidence=o.min_detection_confidence,
                          min_suppression_threshold=o.min_suppression_threshold)
        else:
            kwargs.update(score_threshold=o.min_detection_confidence, max_results=o.max_results)
        try:
            self._task = getattr(vision, class_name).create_from_options(getattr(vision, options_name)(**kwargs))
        except (ValueError, RuntimeError) as exc:  # MediaPipe's status messages: the metadata it found lacking
            message = " ".join(str(exc).split())[:400]
            raise ModelError(f"{self._where}: MediaPipe's {class_name} cannot run {path.name}: {message}; "
                             f"hint: task {o.task} needs {needs}") from exc
        self._last_ms = -1
        self._warned = False
        self._default_label = "face" if o.task == "face_detector" else ""
        ctx.logger.info("%s: mediapipe %s %s (%s mode) runs %s", self._where, getattr(mp, "__version__", "?"),
                        class_name, o.running_mode.lower(), path)

    def process(self, ctx):
        frame: Frame = ctx.get(self.IMAGE)
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame.image))
        if self._video:
            ms = ctx.timestamp // 1000
            if ms <= self._last_ms:
                if not self._warned:
                    ctx.logger.warning("%s: packet timestamps less than 1 ms apart (%d us); MediaPipe's video mode "
                                       "needs increasing milliseconds, so they are moved on (warned once)",
                                       self._where, ctx.timestamp)
                    self._warned = True
                ms = self._last_ms + 1
            self._last_ms = ms
            result = self._task.detect_for_video(image, ms)
        else:
            result = self._task.detect(image)
        ctx.send(self.DETECTIONS, self._to_detections(result.detections, frame.width, frame.height))

    def close(self, ctx):
        task, self._task = getattr(self, "_task", None), None
        if task is not None:
            task.close()

    def _to_detections(self, found, width: int, height: int) -> Detections:
        if not found:
            return Detections.empty(6 if self.options.task == "face_detector" else 0)
        boxes = np.array([[d.bounding_box.origin_x, d.bounding_box.origin_y,
                           d.bounding_box.origin_x + d.bounding_box.width,
                           d.bounding_box.origin_y + d.bounding_box.height] for d in found], np.float32)
        boxes /= np.array([width, height, width, height], np.float32)
        best = [max(d.categories, key=lambda c: c.score) if d.categories else None for d in found]
        scores = np.array([c.score if c is not None else 0.0 for c in best], np.float32)
        labels = tuple((c.category_name or c.display_name if c is not None else "") or self._default_label
                       or (str(c.index) if c is not None and c.index is not None else "") for c in best)
        counts = {len(d.keypoints or ()) for d in found}
        keypoints = np.zeros((len(found), 0, 2), np.float32)
        if len(counts) == 1 and counts != {0}:  # keypoints only when every detection has the same number
            keypoints = np.array([[(k.x, k.y) for k in d.keypoints] for d in found], np.float32)
        return Detections(boxes, scores, keypoints, labels if any(labels) else ())

    def _find_model(self, entry: str) -> Path:
        return find_model_file(entry, self._where)

    def _check_model_file(self, path: Path) -> None:
        """Cheap checks before MediaPipe sees the file, whose own messages for these cases are cryptic."""
        data = path.read_bytes()
        if data[4:8] != b"TFL3":
            if zipfile.is_zipfile(path):
                return  # a .task bundle: MediaPipe reads the models inside it
            raise ModelError(f"{self._where}: {path.name} is neither a .tflite model nor a .task bundle (expected "
                             f"the TFL3 identifier or a zip file); hint: task {self.options.task} needs "
                             f"{_TASKS[self.options.task][2]}")
        if b"TFLITE_METADATA" not in data:
            raise ModelError(f"{self._where}: {path.name} has no MediaPipe Tasks metadata (TFLITE_METADATA), which "
                             "MediaPipe Tasks read the input normalization and outputs from; hint: task "
                             f"{self.options.task} needs {_TASKS[self.options.task][2]}; or run the bare model with "
                             "InferenceCalculator (engine: litert) and framegraph's own post-processing")


def _mediapipe_installed() -> bool:
    return importlib.util.find_spec("mediapipe") is not None
