"""The overlay copies a frame only when it draws on it; from planes it converts once, into its own array."""
import numpy as np
import pytest

from pipelines.testing import CalculatorRunner
from pipelines.types import Frame, RenderData

cv2 = pytest.importorskip("cv2", reason="needs OpenCV (pip install 'framegraph[video]')")

BOX = RenderData(boxes=(((0.25, 0.25, 0.75, 0.75), (255, 0, 0), "face 0.9"),))
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


def test_drawing_on_planes_matches_drawing_on_their_rgb():
    planes, rgb = _planes_frame(1), None
    rgb = Frame(cv2.cvtColor(planes.yuv420p, cv2.COLOR_YUV2RGB_I420), index=1, source="clip.mp4", fps=25.0)
    [ours] = CalculatorRunner(NO_FPS).run({"IMAGE": [planes], "RENDER_DATA": [BOX]})["IMAGE"]
    [theirs] = CalculatorRunner(NO_FPS).run({"IMAGE": [rgb], "RENDER_DATA": [BOX]})["IMAGE"]
    np.testing.assert_array_equal(ours.payload.image, theirs.payload.image)
    assert ours.payload.yuv420p is None and ours.payload.index == 1  # drawn on: an RGB frame now
    assert planes.__dict__["_rgb"] is None  # the shared input was neither converted nor touched
    assert np.any(ours.payload.image != rgb.image)
