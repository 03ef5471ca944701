"""DetectionsToRenderDataCalculator: boxes with "label score" text, keypoints, track ids."""
import numpy as np
import pytest

from calculators.render.detections_to_render_data import DetectionsToRenderDataCalculator
from pipelines.testing import CalculatorRunner
from pipelines.types import Detections, RenderData


def faces(track_ids=None) -> Detections:
    return Detections(np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.9, 0.9]], np.float32),
                      np.array([0.934, 0.5], np.float32),
                      np.array([[[0.15, 0.25]], [[0.6, 0.7]]], np.float32), ("face", "face"), track_ids)


def test_boxes_labels_and_keypoints():
    out = CalculatorRunner("""
        calculator: DetectionsToRenderDataCalculator
        options: {color: [255, 0, 0], keypoint_color: [0, 0, 255], thickness: 3}
    """).run({"DETECTIONS": [faces(), Detections.empty()]})
    first, second = (p.payload for p in out["RENDER_DATA"])
    assert isinstance(first, RenderData)
    assert [label for _, _, label in first.boxes] == ["face 0.93", "face 0.50"]
    np.testing.assert_allclose(first.boxes[0][0], [0.1, 0.2, 0.3, 0.4], rtol=1e-6)
    assert first.boxes[0][1] == (255, 0, 0)
    np.testing.assert_allclose([p for p, _ in first.points], [[0.15, 0.25], [0.6, 0.7]], rtol=1e-6)
    assert {c for _, c in first.points} == {(0, 0, 255)}
    assert first.extra["thickness"] == 3.0
    assert second.boxes == () and second.points == ()  # sent even for no detections


def test_track_ids_and_no_score():
    calc = DetectionsToRenderDataCalculator(DetectionsToRenderDataCalculator.Options(show_score=False))
    data = calc.render(faces(track_ids=np.array([3, 11])))
    assert [label for _, _, label in data.boxes] == ["#3 face", "#11 face"]


def test_bad_color_is_refused():
    with pytest.raises(ValueError, match="three integers 0-255"):
        DetectionsToRenderDataCalculator.Options(color=(0, 300, 0))
