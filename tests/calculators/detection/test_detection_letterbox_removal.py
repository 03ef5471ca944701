"""DetectionLetterboxRemovalCalculator: MediaPipe's mapping from a letterboxed input back to the image."""
import numpy as np
import pytest

from calculators.detection.detection_letterbox_removal import remove_letterbox
from pipelines import CalculatorError
from pipelines.testing import CalculatorRunner
from pipelines.types import Detections, LetterboxPadding

# A 176x144 frame letterboxed into a square: 16 rows of border above and below, of 176.
PADDING = LetterboxPadding(left=0.0, top=16 / 176, right=0.0, bottom=16 / 176)


def face() -> Detections:
    return Detections(np.array([[0.25, 0.25, 0.75, 0.5]], np.float32), np.array([0.9], np.float32),
                      np.array([[[0.5, 16 / 176], [0.25, 0.5]]], np.float32), ("face",), np.array([7]))


def test_boxes_and_keypoints_map_back_to_the_image():
    out = remove_letterbox(face(), PADDING)
    sy = 1 - 32 / 176  # the image's share of the padded height
    np.testing.assert_allclose(out.xyxy, [[0.25, (0.25 - 16 / 176) / sy, 0.75, (0.5 - 16 / 176) / sy]], rtol=1e-6)
    np.testing.assert_allclose(out.keypoints, [[[0.5, 0.0], [0.25, (0.5 - 16 / 176) / sy]]], atol=1e-7)
    # In pixels of the 176x144 frame: y = (relative y * 176 - 16) / 144 * 144.
    px = out.to_pixels(176, 144)
    np.testing.assert_allclose(px.xyxy[0, [1, 3]], [0.25 * 176 - 16, 0.5 * 176 - 16], rtol=1e-5)
    assert out.labels == ("face",) and out.track_ids.tolist() == [7] and out.scores[0] == np.float32(0.9)


def test_horizontal_padding_and_unchanged_input():
    d = face()
    before = d.xyxy.copy()
    out = remove_letterbox(d, LetterboxPadding(left=0.1, top=0.0, right=0.3, bottom=0.0))
    np.testing.assert_allclose(out.xyxy, [[(0.25 - 0.1) / 0.6, 0.25, (0.75 - 0.1) / 0.6, 0.5]], rtol=1e-6)
    np.testing.assert_array_equal(d.xyxy, before)


def test_runs_in_a_graph_and_sends_nothing_without_detections():
    runner = CalculatorRunner("calculator: DetectionLetterboxRemovalCalculator")
    out = runner.run({"DETECTIONS": [(0, face()), (2, Detections.empty(2))],
                      "LETTERBOX_PADDING": [(0, PADDING), (1, PADDING), (2, PADDING)]})
    assert [(p.timestamp, len(p.payload)) for p in out["DETECTIONS"]] == [(0, 1), (2, 0)]
    with pytest.raises(CalculatorError, match="no LETTERBOX_PADDING at timestamp 0"):
        runner.run({"DETECTIONS": [(0, face())], "LETTERBOX_PADDING": [(1, PADDING)]})


def test_pixel_detections_are_refused():
    with pytest.raises(ValueError, match="expected relative coordinates"):
        remove_letterbox(face().to_pixels(10, 10), PADDING)
