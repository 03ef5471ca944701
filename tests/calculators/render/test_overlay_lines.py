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


def test_tesselation_gathered_as_arrays_draws_like_point_tuples_and_antialias_off_is_line_8():
    from calculators.render.connections import FACE_TESSELATION
    from pipelines.testing import CalculatorRunner
    from pipelines.types import Landmarks

    xyz = np.random.default_rng(5).uniform(0.2, 0.8, (468, 3)).astype(np.float32)
    runner = CalculatorRunner("calculator: LandmarksToRenderDataCalculator\n"
                              "options: {connections: face_mesh_tesselation, render_landmarks: false, thickness: 1,"
                              " antialias: false, connection_color: [192, 192, 192]}")
    data = runner.run({"LANDMARKS": [Landmarks(xyz)]})["RENDER_DATA"][0].payload
    assert len(data.lines) == len(FACE_TESSELATION) and data.extra["antialias"] is False
    as_tuples = tuple((tuple(tuple(float(v) for v in xyz[i, :2]) for i in tri), (192, 192, 192))
                      for tri in FACE_TESSELATION)
    for (gathered, _), (expected, _) in zip(data.lines, as_tuples):
        assert np.array_equal(gathered, np.asarray(expected))
    drawn, from_tuples = np.zeros((120, 160, 3), np.uint8), np.zeros((120, 160, 3), np.uint8)
    draw(drawn, data)
    draw(from_tuples, RenderData(lines=as_tuples, extra=dict(data.extra)))
    assert drawn.any() and np.array_equal(drawn, from_tuples)
    assert set(np.unique(drawn)) == {0, 192}  # LINE_8: no blended edge pixels
    smooth = np.zeros_like(drawn)
    draw(smooth, RenderData(lines=as_tuples, extra={"thickness": 1}))
    assert len(np.unique(smooth)) > 2  # anti-aliased by default
