"""The overlay copies a frame only when it draws on it, and draws on the planes of a frame that has them, in their
colour encoding."""
from pathlib import Path

import numpy as np
import pytest

from pipelines.testing import CalculatorRunner
from pipelines.types import Frame, RenderData
from pipelines.yuv import BT601, BT601_FULL, BT709, BT709_FULL, rgb_to_i420

cv2 = pytest.importorskip("cv2", reason="needs OpenCV (pip install 'framegraph[video]')")

DRAWING = RenderData(boxes=(((0.25, 0.25, 0.75, 0.75), (0, 255, 0), "face 0.93"),),
                     points=(((0.5, 0.5), (255, 0, 0)),), texts=(("hello", (0.0, 0.9), (255, 255, 255)),),
                     lines=((((0.1, 0.1), (0.3, 0.5), (0.6, 0.2)), (255, 255, 0)),), extra={"thickness": 2})
MEDIA = Path(__file__).resolve().parents[3] / "assets" / "media"
NO_FPS = "calculator: AnnotationOverlayCalculator\noptions: {show_fps: false}"


def _planes_frame(index=0) -> Frame:
    i420 = np.random.default_rng(index).integers(16, 236, (72, 64), dtype=np.uint8)  # 64x48
    return Frame.from_yuv420p(i420, index=index, source="clip.mp4", fps=25.0)


def test_nothing_to_draw_passes_the_frame_itself():
    frames = [_planes_frame(i) for i in range(3)]
    empty = RenderData()  # a detector's frame without faces
    out = CalculatorRunner(NO_FPS).run({"IMAGE": list(enumerate(frames)), "RENDER_DATA": [(1, empty)]})
    assert [p.payload for p in out["IMAGE"]] == frames  # the same objects: planes kept, nothing converted
    assert all(f.yuv420p is not None and f.__dict__["_rgb"] is None for f in frames)


def test_drawing_on_planes_matches_drawing_on_rgb_then_converting():
    av = pytest.importorskip("av")
    with av.open(str(MEDIA / "astronaut_pan.mp4")) as container:
        i420 = next(container.decode(video=0)).to_ndarray()  # 320x240
    planes = Frame.from_yuv420p(i420, index=1, source="clip.mp4", fps=25.0)
    rgb = Frame(cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420), index=1, source="clip.mp4", fps=25.0)
    [ours] = CalculatorRunner(NO_FPS).run({"IMAGE": [planes], "RENDER_DATA": [DRAWING]})["IMAGE"]
    [theirs] = CalculatorRunner(NO_FPS).run({"IMAGE": [rgb], "RENDER_DATA": [DRAWING]})["IMAGE"]
    out = ours.payload
    assert out.yuv420p is not None and out.index == 1 and out.source == "clip.mp4"  # still planes, for the writer
    assert out.yuv420p_encoding == BT601
    assert planes.__dict__["_rgb"] is None and np.array_equal(planes.yuv420p, i420)  # the input: untouched
    # Against the RGB path (what the writer encoded before: drawn in RGB, then OpenCV's RGB->I420).
    before = cv2.cvtColor(theirs.payload.image, cv2.COLOR_RGB2YUV_I420).astype(np.int16)
    luma, chroma = np.abs(out.yuv420p - before)[:240], np.abs(out.yuv420p - before)[240:]
    # Measured: luma 0.05 levels on average (99th percentile 1); chroma 0.5 (99th percentile 13, up to ~90 on
    # 1-pixel lines, which a half-size chroma plane draws 2 pixels wide where the RGB path averaged them away).
    assert luma.mean() < 0.2 and np.percentile(luma, 99) <= 2, (luma.mean(), np.percentile(luma, 99))
    assert chroma.mean() < 1.5, chroma.mean()
    # Away from what was drawn, the planes are the decoder's bytes exactly (the RGB path's round trip is not).
    drawn = cv2.dilate(np.any(theirs.payload.image != rgb.image, axis=2).astype(np.uint8), np.ones((5, 5)))
    assert np.array_equal(out.yuv420p[:240][drawn == 0], i420[:240][drawn == 0])
    assert 0.02 < drawn.mean() < 0.3


@pytest.mark.parametrize("encoding", [BT709, BT709_FULL, BT601_FULL], ids=str)
def test_planes_in_other_encodings_are_drawn_in_theirs(encoding):
    av = pytest.importorskip("av")
    with av.open(str(MEDIA / "astronaut_pan.mp4")) as container:
        rgb = next(container.decode(video=0)).to_ndarray(format="rgb24")  # 320x240
    i420 = rgb_to_i420(rgb, encoding)  # as an HD camera or a phone would have encoded it
    planes = Frame.from_yuv420p(i420, encoding=encoding, index=1, source="clip.mp4", fps=25.0)
    [ours] = CalculatorRunner(NO_FPS).run({"IMAGE": [planes], "RENDER_DATA": [DRAWING]})["IMAGE"]
    [theirs] = CalculatorRunner(NO_FPS).run({"IMAGE": [Frame(planes.image)], "RENDER_DATA": [DRAWING]})["IMAGE"]
    out = ours.payload
    # The drawn copy is still planes, in the input's encoding (which the writer will tag), with every other field.
    assert out.yuv420p is not None and out.yuv420p_encoding == encoding
    assert (out.index, out.source, out.fps) == (1, "clip.mp4", 25.0)
    assert np.array_equal(planes.yuv420p, i420)  # the input: untouched
    # Where the RGB path drew, its result converted into the same encoding (swscale) against ours: measured luma
    # 0.2-0.35 levels on average, 99th percentile 2. Drawn with BT.601 limited's Y, U, V instead: 6-20 on average,
    # 99th percentile 16-37. (Elsewhere the RGB round trip through swscale shifts luma by ~1 level, so only the
    # drawn pixels say something about the colours.)
    drawn = np.any(theirs.payload.image != planes.image, axis=2)
    assert 0.02 < drawn.mean() < 0.3
    luma = np.abs(out.yuv420p[:240] - rgb_to_i420(theirs.payload.image, encoding)[:240].astype(np.int16))[drawn]
    assert luma.mean() < 1.0 and np.percentile(luma, 99) <= 3, (luma.mean(), np.percentile(luma, 99))
    # Away from what was drawn, the planes are the input's bytes exactly.
    near = cv2.dilate(drawn.astype(np.uint8), np.ones((5, 5))) > 0
    assert np.array_equal(out.yuv420p[:240][~near], i420[:240][~near])
