"""Lines are drawn in one OpenCV call per run of one colour (a face mesh is ~2,500 segments): the pixels are those
of drawing every polyline on its own, in order, overlaps included."""
import numpy as np
import pytest

from calculators.render.annotation_overlay import _SHIFT, draw
from pipelines.types import RenderData

cv2 = pytest.importorskip("cv2", reason="the overlay draws with OpenCV")


def test_batched_lines_match_one_call_per_line():
    rng = np.random.default_rng(3)
    colors = [(200, 200, 200)] * 40 + [(255, 0, 0)] * 5 + [(200, 200, 200)] * 3 + [(0, 255, 0)]
    lines = tuple((tuple(map(tuple, rng.uniform(0, 1, (int(rng.integers(2, 5)), 2)))), c) for c in colors)
    data = RenderData(lines=lines, extra={"thickness": 3})
    batched = np.zeros((120, 160, 3), np.uint8)
    draw(batched, data)
    one_by_one = np.zeros_like(batched)
    scale = np.array([160, 120], np.float64) * (1 << _SHIFT)
    for polyline, color in lines:
        pts = np.rint(np.asarray(polyline) * scale).astype(np.int32)
        cv2.polylines(one_by_one, [pts], False, color, 2, cv2.LINE_AA, _SHIFT)
    assert batched.any() and np.array_equal(batched, one_by_one)
