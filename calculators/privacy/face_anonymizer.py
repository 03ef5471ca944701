"""AnonymizeRegionsCalculator: blur, pixelate or fill every tracked or detected box (faces) on a copy of the frame."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Detections, Frame, Tracks
from pipelines.yuv import BT601, YuvEncoding, yuv_of

MODES = ("blur", "pixelate", "fill")
SHAPES = ("ellipse", "rect")
_SHIFT = 4  # OpenCV fixed-point bits: ellipses are drawn with 1/16-pixel precision
_SMALL_SIGMA = 3.0  # the blur runs on the region shrunk until the Gaussian is this wide (see _blur)
_MERGE_IOU = 0.5  # a track's box and a detection of the same face: one region, their union
_MAX_LOST_PADDING = 0.5  # the most a lost track's box grows (per side, as a fraction of its size)


@register_calculator
class AnonymizeRegionsCalculator(Calculator):
    """Hides every box of TRACKS and DETECTIONS on a new frame: blurred, pixelated or filled.

    Meant for faces, where a missed region leaks an identity, so it errs towards covering too much:
    - every track the tracker still keeps is covered, confirmed or not, matched at this frame or only
      predicted (the detector missed it, or did not run): a face never "blinks" into view for a frame or two.
      `max_lost` limits how many missed detector runs a track may have had and still be covered;
    - boxes grow by `padding` per side (detector boxes are tight: hairline, chin and ears lie outside);
      an ellipse always contains the whole unpadded box. A lost track's box grows by `lost_padding` more
      per missed detector run (up to 0.5): its predicted place and size get less certain with every run;
    - a detection and a track on the same face (IoU > 0.5) become one region, their union.

    Modes: `blur` is a Gaussian with sigma = strength x (shorter side of the box) / 4, computed on the region
    shrunk so the kernel stays small (cost does not grow with the face's size); `pixelate` averages blocks of
    strength x (shorter side) / 5 pixels; `fill` paints `color`. Only each box's region of interest is
    touched; boxes partly outside the frame are cut at its edge. The input frame is never modified (it is
    shared with other branches): the output is a copy with the same index, source and fps. A frame holding the
    decoder's planes is hidden on a copy of its planes (Y, then U and V at half size; `anonymize_planes`) and
    stays planes, so the writer encodes it with no conversion. A frame with no box is passed on as it is.

    Ports:
        IMAGE (Frame), TRACKS (Tracks, optional), DETECTIONS (Detections, optional) -> IMAGE (Frame)

    Example node:
        # Blur every face the tracker keeps, and every raw detection the tracker has not taken up yet.
        - calculator: AnonymizeRegionsCalculator
          name: anonymize
          inputs: {IMAGE: throttled_video, TRACKS: face_tracks, DETECTIONS: face_detections}
          outputs: {IMAGE: anonymized_video}
          options: {mode: blur, shape: ellipse, padding: 0.2}
    """

    @dataclass(frozen=True)
    class Options:
        mode: str = "blur"  # blur | pixelate | fill
        shape: str = "ellipse"  # ellipse | rect
        padding: float = 0.2  # grow each box by this fraction of its width/height on every side
        strength: float = 1.0  # blur sigma / pixel block size, relative to the box; 2.0: twice as coarse
        color: tuple[int, int, int] = (0, 0, 0)  # RGB, for mode fill
        max_lost: int = -1  # cover tracks missed by at most this many detector runs; -1: every kept track
        lost_padding: float = 0.02  # extra padding per detector run a track has been lost

        def __post_init__(self):
            if self.mode not in MODES:
                raise ValueError(f"mode must be one of {', '.join(MODES)}; got '{self.mode}'")
            if self.shape not in SHAPES:
                raise ValueError(f"shape must be one of {', '.join(SHAPES)}; got '{self.shape}'")
            if not 0 <= self.padding <= 2:
                raise ValueError(f"padding must be 0..2 (a fraction of the box per side), got {self.padding}")
            if not 0 < self.strength <= 10:
                raise ValueError(f"strength must be > 0 and <= 10 (1 is the default), got {self.strength}")
            if len(self.color) != 3 or any(not 0 <= c <= 255 for c in self.color):
                raise ValueError(f"color must be three integers 0-255 (R, G, B), got {list(self.color)}")
            if self.lost_padding < 0:
                raise ValueError(f"lost_padding must be >= 0, got {self.lost_padding}")
            if self.max_lost < -1:
                raise ValueError(f"max_lost must be >= 0, or -1 for every track kept; got {self.max_lost}")

    IMAGE = Input[Frame]("IMAGE")
    TRACKS = Input[Tracks]("TRACKS").optional()
    DETECTIONS = Input[Detections]("DETECTIONS").optional()
    OUT = Output[Frame]("IMAGE")

    def process(self, ctx):
        frame: Frame = ctx.get(self.IMAGE)
        if frame is None:
            return
        o = self.options
        boxes = regions(frame.width, frame.height, ctx.get(self.TRACKS), ctx.get(self.DETECTIONS), o.max_lost,
                        o.lost_padding)
        if len(boxes) == 0:
            ctx.send(self.OUT, frame)  # nothing to hide: the frame itself, planes and all (copy on write)
        elif frame.yuv420p is not None:
            i420 = anonymize_planes(frame.yuv420p, boxes, frame.yuv420p_encoding, o.mode, o.shape, o.padding,
                                    o.strength, o.color)
            ctx.send(self.OUT, frame.with_planes(i420))
        else:
            image = anonymize(frame.image, boxes, o.mode, o.shape, o.padding, o.strength, o.color)
            ctx.send(self.OUT, dataclasses.replace(frame, image=image))


def regions(width: int, height: int, tracks: Tracks | None, detections: Detections | None,
            max_lost: int = -1, lost_padding: float = 0.0) -> np.ndarray:
    """Every box to cover, (N, 4) xyxy in pixels: the tracks kept (see max_lost), lost ones grown by
    `lost_padding` per missed run, and the detections; a track and a detection of one face merged (union)."""
    scale = np.array([width, height, width, height], np.float64)
    parts = []
    if tracks is not None and len(tracks):
        keep = tracks.lost_frames <= max_lost if max_lost >= 0 else np.ones(len(tracks), bool)
        boxes = np.asarray(tracks.xyxy, np.float64)[keep] * (scale if tracks.relative else 1.0)
        grow = np.minimum(tracks.lost_frames[keep] * lost_padding, _MAX_LOST_PADDING)[:, None]
        size = boxes[:, 2:] - boxes[:, :2]
        parts.append(boxes + np.hstack([-size, size]) * grow)
    if detections is not None and len(detections):
        parts.append(np.asarray(detections.xyxy, np.float64) * (scale if detections.relative else 1.0))
    if not parts:
        return np.zeros((0, 4))
    boxes = np.concatenate(parts)
    boxes = boxes[np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
    return _merge_duplicates(boxes)


def _merge_duplicates(boxes: np.ndarray) -> np.ndarray:
    # Covering one face twice would blur it twice (harmless) or pixelate it on two grids (ugly).
    merged: list[np.ndarray] = []
    for box in boxes[np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))]:
        for i, kept in enumerate(merged):
            iw = min(box[2], kept[2]) - max(box[0], kept[0])
            ih = min(box[3], kept[3]) - max(box[1], kept[1])
            inter = max(iw, 0.0) * max(ih, 0.0)
            union = _area(box) + _area(kept) - inter
            if union > 0 and inter / union > _MERGE_IOU:
                merged[i] = np.concatenate([np.minimum(box[:2], kept[:2]), np.maximum(box[2:], kept[2:])])
                break
        else:
            merged.append(box)
    return np.array(merged).reshape(-1, 4)


def _area(box: np.ndarray) -> float:
    return float((box[2] - box[0]) * (box[3] - box[1]))


def anonymize(image: np.ndarray, boxes: np.ndarray, mode: str = "blur", shape: str = "ellipse",
              padding: float = 0.2, strength: float = 1.0, color=(0, 0, 0)) -> np.ndarray:
    """A copy of `image` (HxWx3 uint8) with every box (N, 4 xyxy pixels) hidden; `image` itself when N is 0."""
    if len(boxes) == 0:
        return image
    out = image.copy()
    _hide(out, boxes, mode, shape, padding, strength, color)
    return out


def anonymize_planes(i420: np.ndarray, boxes: np.ndarray, encoding: YuvEncoding = BT601, mode: str = "blur",
                     shape: str = "ellipse", padding: float = 0.2, strength: float = 1.0,
                     color=(0, 0, 0)) -> np.ndarray:
    """`anonymize` on an I420 buffer (H * 3 / 2, W) in `encoding`: a copy with every box hidden in Y, and in U and
    V at half size. Blurring and pixelating average pixels, which commutes with the (affine) YUV<->RGB map, so
    this is what converting, hiding in RGB and converting back gives, within rounding and the chroma's half
    resolution (tests/calculators/privacy pin the difference); `fill` paints `color`'s Y, U and V."""
    if len(boxes) == 0:
        return i420
    out = i420.copy()
    height, width = i420.shape[0] * 2 // 3, i420.shape[1]
    chroma = out[height:].reshape(2, height // 2, width // 2)  # views: hiding in them hides in `out`
    fills = yuv_of(tuple(int(c) for c in color), encoding)  # the fill colour's Y, U, V
    for plane, scale, fill in zip((out[:height], chroma[0], chroma[1]), (1, 2, 2), fills):
        _hide(plane, boxes, mode, shape, padding, strength, fill, scale=scale, snap=True)
    return out


def _hide(out: np.ndarray, boxes: np.ndarray, mode: str, shape: str, padding: float, strength: float,
          color, scale: int = 1, snap: bool = False) -> None:
    """Hide every box (xyxy pixels) of `out` (HxWx3, or one HxW plane with a scalar `color`) in place.

    `scale` 2: `out` is a chroma plane at half the boxes' resolution. `snap` (every plane of an I420 frame) grows
    each region to even pixels, so that the chroma's region is exactly half the luma's and both get the same
    pixelation cells and blur grid."""
    h, w = out.shape[0] * scale, out.shape[1] * scale  # in the boxes' pixels
    for x1, y1, x2, y2 in np.asarray(boxes, np.float64):
        bw, bh = x2 - x1, y2 - y1
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        ax, ay = bw / 2 * (1 + 2 * padding), bh / 2 * (1 + 2 * padding)  # half sizes of the padded box
        if shape == "ellipse":
            # The ellipse through the box's corners is sqrt(2) times its half sizes: never smaller than that.
            ax, ay = max(ax, bw / 2 * math.sqrt(2)), max(ay, bh / 2 * math.sqrt(2))
        rx1, ry1 = max(0, math.floor(cx - ax)), max(0, math.floor(cy - ay))
        rx2, ry2 = min(w, math.ceil(cx + ax)), min(h, math.ceil(cy + ay))
        if snap:
            rx1, ry1, rx2, ry2 = rx1 - rx1 % 2, ry1 - ry1 % 2, min(w, rx2 + rx2 % 2), min(h, ry2 + ry2 % 2)
        if rx2 <= rx1 or ry2 <= ry1:
            continue  # wholly outside the frame
        roi = out[ry1 // scale:ry2 // scale, rx1 // scale:rx2 // scale]
        side = min(bw, bh)
        if mode == "blur":
            hidden = _blur(roi, strength * side / 4 / scale)
        elif mode == "pixelate":
            block = max(2.0, strength * side / 5)
            hidden = _pixelate(roi, (max(1, round((rx2 - rx1) / block)), max(1, round((ry2 - ry1) / block))))
        else:
            hidden = np.empty_like(roi)
            hidden[:] = color
        if shape == "rect":
            roi[:] = hidden
        else:
            # OpenCV puts pixel centres at integers; box coordinates put them at +0.5 (of a plane pixel).
            _paste_ellipse(roi, hidden, ((cx - rx1) / scale - 0.5, (cy - ry1) / scale - 0.5),
                           (ax / scale, ay / scale))


def _blur(roi: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of `sigma` pixels, in constant time: shrink (area average) until sigma is a few pixels,
    blur there, enlarge back. A direct kernel would be 6 sigma wide: 150 px for a 100 px face."""
    import cv2

    h, w = roi.shape[:2]
    f = min(1.0, _SMALL_SIGMA / max(sigma, 1e-6))
    sw, sh = max(1, round(w * f)), max(1, round(h * f))
    small = cv2.resize(roi, (sw, sh), interpolation=cv2.INTER_AREA) if f < 1 else roi
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=max(sigma * f, 0.5), borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) if f < 1 else small


def _pixelate(roi: np.ndarray, cells: tuple[int, int]) -> np.ndarray:
    """`roi` averaged over a grid of `cells` (columns, rows) of blocks."""
    import cv2

    h, w = roi.shape[:2]
    small = cv2.resize(roi, cells, interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def _paste_ellipse(roi: np.ndarray, hidden: np.ndarray, center: tuple[float, float], axes: tuple[float, float]):
    """roi = hidden inside the ellipse; roi outside it is unchanged. A hard edge: anti-aliasing it cost more
    than the blur itself, and on a blurred or pixelated patch it does not show."""
    import cv2

    mask = np.zeros(roi.shape[:2], np.uint8)
    one = 1 << _SHIFT
    cv2.ellipse(mask, (round(center[0] * one), round(center[1] * one)), (round(axes[0] * one), round(axes[1] * one)),
                0, 0, 360, 1, -1, cv2.LINE_8, _SHIFT)
    cv2.copyTo(hidden, mask, roi)  # in place: roi is a view of the output frame
