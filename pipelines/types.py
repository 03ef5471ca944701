"""Small validated data types passed between vision calculators.

Coordinate conventions are in the names: `xyxy` is (x1, y1, x2, y2); `relative=True` means fractions of
the image's width and height (MediaPipe's convention inside graphs); pixels only at the edges (JSON out).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded image: HxWx3 uint8 RGB, with where it came from."""

    image: np.ndarray
    index: int = 0  # frame number in its source, from 0
    source: str = ""
    live: bool = False  # from a camera or network stream (may be dropped when the graph is behind)
    fps: float = 0.0  # the source's nominal frame rate, 0 if unknown
    total_frames: int = 0  # frames in the source if known, else 0

    def __post_init__(self):
        img = self.image
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            shape = getattr(img, "shape", None)
            dtype = getattr(img, "dtype", type(img).__name__)
            raise ValueError(f"Frame.image: expected an HxWx3 uint8 RGB array, got shape {shape} dtype {dtype}")

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True, eq=False)
class Tensors:
    """Model inputs or outputs, in the model's order; `names` as the model declares them."""

    arrays: tuple[np.ndarray, ...]
    names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.arrays[i]


@dataclass(frozen=True)
class LetterboxPadding:
    """Padding added to fit an image into a model input, as fractions of the padded size (MediaPipe's)."""

    left: float = 0.0
    top: float = 0.0
    right: float = 0.0
    bottom: float = 0.0


@dataclass(frozen=True, eq=False)
class Detections:
    """N detections, column-wise. `xyxy` (N,4) and `keypoints` (N,K,2) are relative when `relative`."""

    xyxy: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 2), np.float32))
    labels: tuple[str, ...] = ()
    track_ids: np.ndarray | None = None
    relative: bool = True

    def __post_init__(self):
        n = len(self.xyxy)
        if self.xyxy.shape != (n, 4):
            raise ValueError(f"Detections.xyxy: expected shape (N, 4), got {self.xyxy.shape}")
        if self.scores.shape != (n,):
            raise ValueError(f"Detections.scores: expected shape ({n},), got {self.scores.shape}")
        if len(self.keypoints) not in (0, n) or (len(self.keypoints) and self.keypoints.shape[2] != 2):
            raise ValueError(f"Detections.keypoints: expected shape ({n}, K, 2), got {self.keypoints.shape}")
        if self.labels and len(self.labels) != n:
            raise ValueError(f"Detections.labels: expected {n} labels, got {len(self.labels)}")
        if self.track_ids is not None and self.track_ids.shape != (n,):
            raise ValueError(f"Detections.track_ids: expected shape ({n},), got {self.track_ids.shape}")

    @classmethod
    def empty(cls, num_keypoints: int = 0) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32),
                   np.zeros((0, num_keypoints, 2), np.float32))

    def __len__(self) -> int:
        return len(self.xyxy)

    def to_pixels(self, width: int, height: int) -> "Detections":
        if not self.relative:
            return self
        scale = np.array([width, height], np.float32)
        return Detections(self.xyxy * np.tile(scale, 2), self.scores,
                          self.keypoints * scale if self.keypoints.size else self.keypoints,
                          self.labels, self.track_ids, relative=False)


@dataclass(frozen=True, eq=False)
class Tracks:
    """Every live track at one timestamp. `xyxy` is the measured box when `matched` (a detection was
    assigned to the track at this timestamp), else the motion model's prediction. `lost_frames` counts the
    detector runs since the last match; `trails` holds recent box centres, oldest first (relative)."""

    track_ids: np.ndarray  # (N,) int64
    xyxy: np.ndarray  # (N, 4) float32
    scores: np.ndarray  # (N,) float32, the last matched detection's score
    matched: np.ndarray  # (N,) bool
    lost_frames: np.ndarray  # (N,) int32
    confirmed: np.ndarray  # (N,) bool: seen often enough to be reported (min_hits)
    labels: tuple[str, ...] = ()
    trails: tuple[np.ndarray, ...] = ()  # N arrays of shape (K, 2)
    relative: bool = True

    def __post_init__(self):
        n = len(self.track_ids)
        for name, shape in (("xyxy", (n, 4)), ("scores", (n,)), ("matched", (n,)), ("lost_frames", (n,)),
                            ("confirmed", (n,))):
            if getattr(self, name).shape != shape:
                raise ValueError(f"Tracks.{name}: expected shape {shape}, got {getattr(self, name).shape}")
        if self.labels and len(self.labels) != n:
            raise ValueError(f"Tracks.labels: expected {n} labels, got {len(self.labels)}")
        if self.trails and len(self.trails) != n:
            raise ValueError(f"Tracks.trails: expected {n} trails, got {len(self.trails)}")

    @classmethod
    def empty(cls) -> "Tracks":
        return cls(np.zeros((0,), np.int64), np.zeros((0, 4), np.float32), np.zeros((0,), np.float32),
                   np.zeros((0,), bool), np.zeros((0,), np.int32), np.zeros((0,), bool))

    def __len__(self) -> int:
        return len(self.track_ids)


@dataclass(frozen=True)
class RenderData:
    """What to draw on a frame, in relative coordinates: boxes, points, and text lines."""

    boxes: tuple[tuple[tuple[float, float, float, float], tuple[int, int, int], str], ...] = ()  # (xyxy, rgb, label)
    points: tuple[tuple[tuple[float, float], tuple[int, int, int]], ...] = ()  # ((x, y), rgb)
    texts: tuple[tuple[str, tuple[float, float], tuple[int, int, int]], ...] = ()  # (text, (x, y), rgb)
    lines: tuple[tuple[tuple[tuple[float, float], ...], tuple[int, int, int]], ...] = ()  # (polyline, rgb)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NormalizedRect:
    """A rotated rectangle relative to the image (MediaPipe's NormalizedRect): centre and size as fractions of the
    image's width and height, `rotation` in radians, clockwise on screen (y points down), about the centre."""

    x_center: float
    y_center: float
    width: float
    height: float
    rotation: float = 0.0


@dataclass(frozen=True, eq=False)
class Landmarks:
    """One object's N landmarks. `xyz` (N, 3) float32: with `relative`, x and y are fractions of the image's width
    and height and z is scaled like x (MediaPipe's NormalizedLandmarkList); without it, pixels, or metres about the
    object's centre when `world`. `visibility` and `presence` (N,) are probabilities, None if the model has none."""

    xyz: np.ndarray
    visibility: np.ndarray | None = None
    presence: np.ndarray | None = None
    relative: bool = True
    world: bool = False

    def __post_init__(self):
        n = len(self.xyz)
        if self.xyz.ndim != 2 or self.xyz.shape[1] != 3:
            raise ValueError(f"Landmarks.xyz: expected shape (N, 3), got {self.xyz.shape}")
        for name in ("visibility", "presence"):
            value = getattr(self, name)
            if value is not None and value.shape != (n,):
                raise ValueError(f"Landmarks.{name}: expected shape ({n},), got {value.shape}")
        if self.world and self.relative:
            raise ValueError("Landmarks: world landmarks are in metres, so relative must be False")

    def __len__(self) -> int:
        return len(self.xyz)


@dataclass(frozen=True)
class Classification:
    """One class of a classifier's output (MediaPipe's Classification): handedness is "Left" or "Right"."""

    label: str
    score: float
    index: int = 0


@dataclass(frozen=True, eq=False)
class Mask:
    """A segmentation mask: `probability` HxW float32 in [0, 1], how likely each pixel is foreground."""

    probability: np.ndarray

    def __post_init__(self):
        p = self.probability
        if not isinstance(p, np.ndarray) or p.ndim != 2 or p.dtype != np.float32:
            raise ValueError(f"Mask.probability: expected an HxW float32 array, got shape "
                             f"{getattr(p, 'shape', None)} dtype {getattr(p, 'dtype', type(p).__name__)}")

    @property
    def width(self) -> int:
        return int(self.probability.shape[1])

    @property
    def height(self) -> int:
        return int(self.probability.shape[0])
