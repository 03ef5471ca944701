import dataclasses
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Frame, RenderData

_SHIFT = 4  # OpenCV fixed-point bits: boxes and points are drawn with 1/16-pixel precision
_TEXT_BG = (24, 24, 24)


@register_calculator
class AnnotationOverlayCalculator(Calculator):
    """Draws render data on a copy of each frame (MediaPipe's AnnotationOverlayCalculator).

    Boxes are anti-aliased rectangles with their label on a dark background, points filled circles, texts
    on a dark background; with `show_fps` a frame-rate counter (wall clock, last `fps_window` frames) is
    drawn bottom left. The input frame is never modified: the output is a new Frame with the same index,
    source, fps and total_frames. Any number of RENDER_DATA streams may be connected; those without a
    packet at a frame's timestamp draw nothing. With nothing to draw (no primitives, no fps counter) the input
    frame itself is sent on (copy on write): it keeps the decoder's planes, so a writer encodes it unconverted.

    Ports:
        IMAGE (Frame), RENDER_DATA (RenderData, zero or more streams) -> IMAGE (Frame, annotated copy)

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
        if not drawings and fps is None:
            ctx.send(self.OUT, frame)  # nothing to draw: the frame itself, planes and all (copy on write)
            return
        image = _own_rgb(frame)
        for data in drawings:
            draw(image, data)
        if fps is not None:
            # Bottom left: box labels sit above boxes, often at the top of the frame.
            _label(image, f"FPS {fps:.1f}", (4, image.shape[0]), (255, 255, 255), below=False)
        ctx.send(self.OUT, dataclasses.replace(frame, image=image))


def _draws(data: RenderData) -> bool:
    return bool(data.boxes or data.points or data.texts or data.lines)


def _own_rgb(frame: Frame) -> np.ndarray:
    """An RGB array of the frame this node may draw on. From planes, converted into a new array rather than
    reading the shared `frame.image` and copying it: one full-frame pass instead of two."""
    if frame.yuv420p is not None:
        import cv2

        return cv2.cvtColor(frame.yuv420p, cv2.COLOR_YUV2RGB_I420)  # the same conversion `frame.image` uses
    return frame.image.copy()


def draw(image: np.ndarray, data: RenderData) -> None:
    """Draw `data` (relative coordinates) on `image` (HxWx3 RGB uint8) in place."""
    import cv2

    h, w = image.shape[:2]
    thickness = max(1, int(round(float(data.extra.get("thickness", 2.0)))))
    scale = np.array([w, h, w, h], np.float64) * (1 << _SHIFT)
    for xyxy, color, label in data.boxes:
        x1, y1, x2, y2 = np.rint(np.asarray(xyxy, np.float64) * scale).astype(int).tolist()
        cv2.rectangle(image, (x1, y1), (x2, y2), _bgr_free(color), thickness, cv2.LINE_AA, _SHIFT)
        if label:
            _label(image, label, (x1 >> _SHIFT, y1 >> _SHIFT), color, below=False)
    if data.points:
        radius = max(2, int(round(min(h, w) / 150))) << _SHIFT
        for (x, y), color in data.points:
            center = (int(round(x * w * (1 << _SHIFT))), int(round(y * h * (1 << _SHIFT))))
            cv2.circle(image, center, radius, _bgr_free(color), -1, cv2.LINE_AA, _SHIFT)
    for polyline, color in data.lines:
        if len(polyline) >= 2:
            pts = np.rint(np.asarray(polyline, np.float64) * scale[:2]).astype(np.int32)
            cv2.polylines(image, [pts], False, _bgr_free(color), max(1, thickness - 1), cv2.LINE_AA, _SHIFT)
    for text, (x, y), color in data.texts:
        _label(image, text, (int(round(x * w)), int(round(y * h))), color, below=True)


def _bgr_free(color) -> tuple[int, int, int]:
    # Frames are RGB and colours are RGB: no channel swap, just plain ints for OpenCV.
    return tuple(int(c) for c in color)


def _label(image: np.ndarray, text: str, anchor: tuple[int, int], color, below: bool) -> None:
    """Text on a filled dark rectangle: above the anchor point (box labels) or below it, kept inside the image."""
    import cv2

    h, w = image.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    font_scale = max(0.35, min(h, w) / 900)
    weight = 1 if font_scale < 0.8 else 2
    (tw, th), base = cv2.getTextSize(text, font, font_scale, weight)
    pad = 2
    x = min(max(anchor[0], 0), max(w - tw - 2 * pad, 0))
    top = anchor[1] if below else anchor[1] - th - base - 2 * pad
    top = min(max(top, 0), max(h - th - base - 2 * pad, 0))
    cv2.rectangle(image, (x, top), (x + tw + 2 * pad, top + th + base + 2 * pad), _TEXT_BG, -1)
    cv2.putText(image, text, (x + pad, top + pad + th), font, font_scale, _bgr_free(color), weight, cv2.LINE_AA)
