import dataclasses
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Frame, RenderData
from pipelines.yuv import BT601, YuvEncoding, yuv_of

_SHIFT = 4  # OpenCV fixed-point bits: boxes and points are drawn with 1/16-pixel precision
_TEXT_BG = (24, 24, 24)


@register_calculator
class AnnotationOverlayCalculator(Calculator):
    """Draws render data on a copy of each frame (MediaPipe's AnnotationOverlayCalculator).

    Boxes are anti-aliased rectangles with their label on a dark background, points filled circles, texts on a dark
    background; points and lines are anti-aliased too unless the render data's extra says `antialias: False`
    (OpenCV's LINE_8, as MediaPipe draws); with `show_fps` a frame-rate counter (wall clock, last `fps_window`
    frames) is drawn bottom left. The input frame is never modified: the output is a new Frame with the same index,
    source, fps and total_frames. Any number of RENDER_DATA streams may be connected; those without a packet at a
    frame's timestamp draw nothing. With nothing to draw (no primitives, no fps counter) the input frame itself is
    sent on (copy on write), as it is when nothing reads the output's pixels (its only consumer a flow limiter's
    FINISHED, which reads timestamps: `CalculatorContext.wanted`). A frame holding yuv420p planes is drawn on a copy
    of its planes (each shape in each colour's Y, U and V by the planes' encoding, BT.601 or BT.709, limited or full
    range; chroma at half size) and stays planes in that encoding, so the writer encodes it with no conversion;
    against drawing in RGB and converting (BT.601 limited), luma differs by 0.05 levels on average, chroma by 0.5
    (up to ~90 along 1-pixel lines, which the half-size chroma draws 2 pixels wide).

    Ports:
        IMAGE (Frame), RENDER_DATA (RenderData, zero or more streams) -> IMAGE (Frame, annotated copy, or the
        input frame itself when nothing is drawn)

    Example node:
        - calculator: AnnotationOverlayCalculator
          inputs: {IMAGE: input_video, RENDER_DATA: [face_render_data]}
          outputs: {IMAGE: output_video}
          options: {show_fps: true}
    """

    @dataclass(frozen=True)
    class Options:
        show_fps: bool = True
        fps_window: int = 30  # frames the fps counter averages over

        def __post_init__(self):
            if self.fps_window < 2:
                raise ValueError(f"fps_window must be >= 2, got {self.fps_window}")

    IMAGE = Input[Frame]("IMAGE")
    RENDER_DATA = Input[RenderData]("RENDER_DATA").multiple().optional()
    OUT = Output[Frame]("IMAGE")

    def open(self, ctx):
        self._times: deque = deque(maxlen=self.options.fps_window)

    def process(self, ctx):
        frame = ctx.get(self.IMAGE)
        if frame is None:
            return
        self._times.append(time.perf_counter())
        drawings = [data for data in ctx.get(self.RENDER_DATA, []) if data is not None and _draws(data)]
        fps = None
        if self.options.show_fps and len(self._times) >= 2:
            elapsed = self._times[-1] - self._times[0]
            fps = (len(self._times) - 1) / elapsed if elapsed > 0 else None
        if (not drawings and fps is None) or not ctx.wanted(self.OUT):
            # Nothing to draw, or nobody looks (only a flow limiter's FINISHED, a progress count: --detections
            # without --output or a window): the frame itself, planes and all (copy on write).
            ctx.send(self.OUT, frame)
            return
        if frame.yuv420p is not None:
            # Drawn on a copy of the planes the encoder takes: no conversion to RGB and back for the writer.
            i420 = frame.yuv420p.copy()
            canvas = _yuv_canvas(i420, frame.width, frame.height, frame.yuv420p_encoding)
        else:
            i420, canvas = None, [_Plane(frame.image.copy(), _rgb_value, 0)]
        for data in drawings:
            _draw(canvas, frame.width, frame.height, data)
        if fps is not None:
            # Bottom left: box labels sit above boxes, often at the top of the frame.
            _label(canvas, frame.width, frame.height, f"FPS {fps:.1f}", (4, frame.height), (255, 255, 255),
                   below=False)
        if i420 is not None:
            ctx.send(self.OUT, frame.with_planes(i420))  # in the input's encoding
        else:
            ctx.send(self.OUT, dataclasses.replace(frame, image=canvas[0].array))


def _draws(data: RenderData) -> bool:
    return bool(data.boxes or data.points or data.texts or data.lines)


class _Plane(NamedTuple):
    """One array drawn on: the RGB image, or one of the I420 planes (`half`: 1 for U and V, at half size)."""

    array: np.ndarray
    value: Callable  # RGB colour -> what this array takes (an RGB tuple, or one plane's Y, U or V)
    half: int


def _rgb_value(color) -> tuple[int, int, int]:
    # Frames are RGB and colours are RGB: no channel swap, just plain ints for OpenCV.
    return tuple(int(c) for c in color)


def _yuv_canvas(i420: np.ndarray, width: int, height: int, encoding: YuvEncoding) -> list[_Plane]:
    chroma = i420[height:].reshape(2, height // 2, width // 2)  # views: drawing on them draws on i420
    return [_Plane(i420[:height], lambda c: yuv_of(_rgb_value(c), encoding)[0], 0),
            _Plane(chroma[0], lambda c: yuv_of(_rgb_value(c), encoding)[1], 1),
            _Plane(chroma[1], lambda c: yuv_of(_rgb_value(c), encoding)[2], 1)]


def draw(image: np.ndarray, data: RenderData) -> None:
    """Draw `data` (relative coordinates) on `image` (HxWx3 RGB uint8) in place."""
    _draw([_Plane(image, _rgb_value, 0)], image.shape[1], image.shape[0], data)


def draw_on_planes(i420: np.ndarray, data: RenderData, encoding: YuvEncoding = BT601) -> None:
    """Draw `data` on an I420 buffer (H * 3 / 2, W) in `encoding` in place, as the overlay draws on a frame's planes."""
    height, width = i420.shape[0] * 2 // 3, i420.shape[1]
    _draw(_yuv_canvas(i420, width, height, encoding), width, height, data)


def _draw(canvas: list[_Plane], w: int, h: int, data: RenderData) -> None:
    """Draw `data` on every array of `canvas` (one RGB image, or Y, U, V planes), for a w x h frame.

    Coordinates are fixed point with `_SHIFT` fractional bits; a half-size plane takes the same numbers with one
    bit more, which halves them (radii too), so every plane gets the same shapes at its own scale."""
    import cv2

    thickness = max(1, int(round(float(data.extra.get("thickness", 2.0)))))
    scale = np.array([w, h, w, h], np.float64) * (1 << _SHIFT)
    for xyxy, color, label in data.boxes:
        x1, y1, x2, y2 = np.rint(np.asarray(xyxy, np.float64) * scale).astype(int).tolist()
        for p in canvas:
            cv2.rectangle(p.array, (x1, y1), (x2, y2), p.value(color), max(1, thickness >> p.half), cv2.LINE_AA,
                          _SHIFT + p.half)
        if label:
            _label(canvas, w, h, label, (x1 >> _SHIFT, y1 >> _SHIFT), color, below=False)
    line_type = cv2.LINE_AA if data.extra.get("antialias", True) else cv2.LINE_8
    if data.points:
        radius = max(2, int(round(min(h, w) / 150))) << _SHIFT
        for (x, y), color in data.points:
            center = (int(round(x * w * (1 << _SHIFT))), int(round(y * h * (1 << _SHIFT))))
            for p in canvas:
                cv2.circle(p.array, center, radius, p.value(color), -1, line_type, _SHIFT + p.half)
    # One polylines call per run of lines of one colour (drawing order kept): a face mesh is ~2,500 segments, and a
    # call each would cost ~20 ms a frame.
    runs: list[tuple[tuple, list]] = []
    for polyline, color in data.lines:
        if len(polyline) >= 2:
            if not runs or runs[-1][0] != tuple(color):
                runs.append((tuple(color), []))
            runs[-1][1].append(polyline)
    for color, polylines in runs:
        if all(len(line) == len(polylines[0]) for line in polylines):
            stacked = (np.stack(polylines) if isinstance(polylines[0], np.ndarray)
                       else np.asarray(polylines, np.float64))
            pts = list(np.rint(stacked * scale[:2]).astype(np.int32))
        else:
            pts = [np.rint(np.asarray(line, np.float64) * scale[:2]).astype(np.int32) for line in polylines]
        for p in canvas:
            cv2.polylines(p.array, pts, False, p.value(color), max(1, (thickness - 1) >> p.half), line_type,
                          _SHIFT + p.half)
    for text, (x, y), color in data.texts:
        _label(canvas, w, h, text, (int(round(x * w)), int(round(y * h))), color, below=True)


def _label(canvas: list[_Plane], w: int, h: int, text: str, anchor: tuple[int, int], color, below: bool) -> None:
    """Text on a filled dark rectangle: above the anchor point (box labels) or below it, kept inside the image.
    Laid out at the frame's size; a half-size plane gets the same box halved and the text at half scale."""
    import cv2

    font = cv2.FONT_HERSHEY_SIMPLEX
    font_scale = max(0.35, min(h, w) / 900)
    weight = 1 if font_scale < 0.8 else 2
    (tw, th), base = cv2.getTextSize(text, font, font_scale, weight)
    pad = 2
    x = min(max(anchor[0], 0), max(w - tw - 2 * pad, 0))
    top = anchor[1] if below else anchor[1] - th - base - 2 * pad
    top = min(max(top, 0), max(h - th - base - 2 * pad, 0))
    for p in canvas:
        cv2.rectangle(p.array, (x, top), (x + tw + 2 * pad, top + th + base + 2 * pad), p.value(_TEXT_BG), -1,
                      cv2.LINE_8, p.half)
        origin = ((x + pad) >> p.half, (top + pad + th) >> p.half)
        cv2.putText(p.array, text, origin, font, font_scale / (1 << p.half), p.value(color),
                    max(1, weight >> p.half), cv2.LINE_AA)
