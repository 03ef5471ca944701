"""Small validated data types passed between vision calculators.

Coordinate conventions are in the names: `xyxy` is (x1, y1, x2, y2); `relative=True` means fractions of
the image's width and height (MediaPipe's convention inside graphs); pixels only at the edges (JSON out).
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import KW_ONLY, InitVar, dataclass, field
from typing import Any

import numpy as np

from .yuv import BT601, YuvEncoding, i420_to_rgb


class _ConvertedOnRead:
    """`Frame.image`: the RGB array given, or the frame's planes converted on first read (once, under a lock)."""

    def __get__(self, frame, owner=None):
        if frame is None:
            return None  # the dataclass field's default: a frame made from planes has no RGB array yet
        state = frame.__dict__
        rgb = state["_rgb"]
        if rgb is None:
            with state["_lock"]:  # branches share frames: one converts, the others wait and reuse its array
                rgb = state["_rgb"]
                if rgb is None:
                    rgb = state["_rgb"] = i420_to_rgb(state["_i420"], state["_encoding"])
        return rgb

    def __set__(self, frame, value):  # called by the dataclass's __init__ only (the frame is frozen)
        frame.__dict__["_rgb"] = value


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded image: HxWx3 uint8 RGB (`image`), with where it came from.

    A frame may instead be made from the decoder's planes, `Frame(i420=buffer, encoding=..., ...)` or
    `Frame.from_yuv420p`: one contiguous I420 buffer of shape (H * 3 / 2, W), uint8, H and W even, with its colour
    encoding (`pipelines.yuv.YuvEncoding`: BT.601 or BT.709, limited or full range; BT.601 limited, what H.264
    files mostly hold, when not given). Then `image` is converted on first read, once, and cached (thread-safe);
    nodes that never read it (a letterbox reading the planes, a writer encoding them) cost no conversion.
    BT.601 limited range is converted with OpenCV's `COLOR_YUV2RGB_I420`, which matches PyAV's
    `to_ndarray(format="rgb24")` (swscale) to within 1-2 levels on average; at sharp colour edges a pixel may
    differ by up to ~20 levels, since OpenCV repeats each chroma sample where swscale interpolates. The other
    encodings are converted by swscale itself, as PyAV converts the decoder's picture: the same pixels
    (tests/pipelines/test_frame_yuv.py pins the bounds).

    Frames are shared read-only between branches: a node that changes pixels makes a new frame
    (`dataclasses.replace(frame, image=new_rgb)`, RGB only: the old planes no longer describe it; or
    `frame.with_planes(new_planes)` after drawing on a copy of the planes, as the overlay does, which keeps their
    encoding: `dataclasses.replace` would reset it to BT.601). A node with nothing to change sends the frame it got
    (copy on write), so it keeps its planes for the writer, which encodes them as they are.

    Example:
        frame = Frame.from_yuv420p(picture.to_ndarray(), encoding=BT709, index=0, source="clip.mp4")
        frame.image  # RGB by BT.709's coefficients, made now
    """

    image: np.ndarray = _ConvertedOnRead()
    index: int = 0  # frame number in its source, from 0
    source: str = ""
    live: bool = False  # from a camera or network stream (may be dropped when the graph is behind)
    fps: float = 0.0  # the source's nominal frame rate, 0 if unknown
    total_frames: int = 0  # frames in the source if known, else 0
    # Keyword only and not stored fields: `dataclasses.replace(frame, image=...)` must not carry old planes.
    _: KW_ONLY
    i420: InitVar[np.ndarray | None] = None
    encoding: InitVar[YuvEncoding | None] = None  # of i420; None: BT.601 limited range

    def __post_init__(self, i420, encoding):
        state = self.__dict__
        state["_lock"] = threading.Lock()
        state["_i420"] = state["_encoding"] = None
        if encoding is not None and not isinstance(encoding, YuvEncoding):
            raise ValueError(f"Frame.encoding: expected a pipelines.yuv.YuvEncoding (BT601, BT709, BT601_FULL, "
                             f"BT709_FULL), got {encoding!r}")
        if encoding is not None and i420 is None:
            raise ValueError("Frame: encoding describes i420 planes; give it with i420, not with an RGB image")
        if i420 is not None:
            if state["_rgb"] is not None:
                raise ValueError("Frame: give image (RGB) or i420 (planes), not both")
            if not isinstance(i420, np.ndarray) or i420.ndim != 2 or i420.dtype != np.uint8 \
                    or i420.shape[0] % 3 or i420.shape[1] % 2 or not i420.flags.c_contiguous:
                raise ValueError(f"Frame.i420: expected a contiguous (H*3/2, W) uint8 I420 buffer with H and W even, "
                                 f"got shape {getattr(i420, 'shape', None)} dtype "
                                 f"{getattr(i420, 'dtype', type(i420).__name__)}")
            state["_i420"], state["_encoding"] = i420, encoding or BT601
            return
        img = state["_rgb"]
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            shape = getattr(img, "shape", None)
            dtype = getattr(img, "dtype", type(img).__name__)
            raise ValueError(f"Frame.image: expected an HxWx3 uint8 RGB array, got shape {shape} dtype {dtype}")

    @classmethod
    def from_yuv420p(cls, i420: np.ndarray, encoding: YuvEncoding | None = None, **fields) -> "Frame":
        """A frame holding a decoder's yuv420p picture as one I420 buffer (H * 3 / 2, W) in `encoding` (None:
        BT.601 limited range); RGB made on demand."""
        return cls(None, **fields, i420=i420, encoding=encoding)

    def with_planes(self, i420: np.ndarray, encoding: YuvEncoding | None = None) -> "Frame":
        """This frame's fields with new planes (e.g. a drawn copy of `yuv420p`) and no RGB yet. The planes keep this
        frame's encoding unless `encoding` says otherwise (a frame made from RGB: BT.601 limited range)."""
        return dataclasses.replace(self, image=None, i420=i420, encoding=encoding or self.yuv420p_encoding)

    @property
    def yuv420p(self) -> np.ndarray | None:
        """The I420 buffer (H * 3 / 2, W) this frame was made from, or None for a frame made from RGB."""
        return self.__dict__["_i420"]

    @property
    def yuv420p_encoding(self) -> YuvEncoding | None:
        """The colour encoding of `yuv420p` (matrix and range), or None for a frame made from RGB."""
        return self.__dict__["_encoding"]

    def yuv420p_planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Views of the Y (H, W), U and V (H/2, W/2) planes of `yuv420p`, or None."""
        i420 = self.__dict__["_i420"]
        if i420 is None:
            return None
        h, w = self.height, self.width
        chroma = i420[h:].reshape(2, h // 2, w // 2)
        return i420[:h], chroma[0], chroma[1]

    @property
    def width(self) -> int:
        i420 = self.__dict__["_i420"]
        return int(i420.shape[1] if i420 is not None else self.__dict__["_rgb"].shape[1])

    @property
    def height(self) -> int:
        i420 = self.__dict__["_i420"]
        return int(i420.shape[0] * 2 // 3 if i420 is not None else self.__dict__["_rgb"].shape[0])

    def __repr__(self) -> str:  # never converts, never prints pixels
        kind = f"yuv420p {self.yuv420p_encoding}" if self.yuv420p is not None else "rgb"
        return (f"Frame({self.width}x{self.height} {kind}, index={self.index}, source={self.source!r}, "
                f"live={self.live}, fps={self.fps}, total_frames={self.total_frames})")

    # A lock cannot be pickled (the process executor and copy.copy pickle frames): each copy gets its own.
    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__dict__["_lock"] = threading.Lock()
        if "_encoding" not in state:  # pickled before frames carried an encoding: their planes were BT.601 limited
            self.__dict__["_encoding"] = BT601 if state.get("_i420") is not None else None


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
    """What to draw on a frame, in relative coordinates: boxes, points, text and polylines. `extra` carries drawing
    settings: "thickness" (pixels), "antialias" (False: OpenCV's LINE_8 for lines and points)."""

    boxes: tuple[tuple[tuple[float, float, float, float], tuple[int, int, int], str], ...] = ()  # (xyxy, rgb, label)
    points: tuple[tuple[tuple[float, float], tuple[int, int, int]], ...] = ()  # ((x, y), rgb)
    texts: tuple[tuple[str, tuple[float, float], tuple[int, int, int]], ...] = ()  # (text, (x, y), rgb)
    # (polyline, rgb); a polyline is a sequence of (x, y) points or an (L, 2) array of them
    lines: tuple[tuple[Any, tuple[int, int, int]], ...] = ()
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
