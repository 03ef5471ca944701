"""TensorsToDetectionsCalculator: MediaPipe's decoding on hand-built tensors."""
import numpy as np
import pytest

from calculators.detection.tensors_to_detections import TensorsToDetectionsCalculator
from pipelines import CalculatorError
from pipelines.testing import CalculatorRunner
from pipelines.types import Detections, Tensors

Options = TensorsToDetectionsCalculator.Options
CENTRE = np.array([[0.5, 0.5, 1.0, 1.0]], np.float32)  # x_center, y_center, w, h


def decoder(**overrides) -> TensorsToDetectionsCalculator:
    options = dict(num_classes=1, num_boxes=1, num_coords=6, keypoint_coord_offset=4, num_keypoints=1,
                   x_scale=128.0, y_scale=128.0, w_scale=128.0, h_scale=128.0, reverse_output_order=True,
                   sigmoid_score=True, score_clipping_thresh=100.0)
    calc = TensorsToDetectionsCalculator(Options(**{**options, **overrides}))
    calc.open(None)
    return calc


def boxes(*values) -> np.ndarray:
    return np.array(values, np.float32).reshape(1, -1, 6)


def logits(*values) -> np.ndarray:
    return np.array(values, np.float32).reshape(1, -1, 1)


def test_one_anchor_decodes_box_and_keypoint_x_first():
    # Offsets in input pixels: centre +16, -32; size 64 x 32; keypoint +8, -8.
    d = decoder().decode(boxes(16, -32, 64, 32, 8, -8), logits(0.0), CENTRE)
    assert isinstance(d, Detections) and len(d) == 1 and d.relative
    np.testing.assert_allclose(d.xyxy, [[0.375, 0.125, 0.875, 0.375]])
    np.testing.assert_allclose(d.keypoints, [[[0.5625, 0.4375]]])
    np.testing.assert_allclose(d.scores, [0.5])
    assert d.labels == ("face",)


def test_default_order_is_y_first():
    d = decoder(reverse_output_order=False).decode(boxes(-32, 16, 32, 64, -8, 8), logits(0.0), CENTRE)
    np.testing.assert_allclose(d.xyxy, [[0.375, 0.125, 0.875, 0.375]])
    np.testing.assert_allclose(d.keypoints, [[[0.5625, 0.4375]]])


def test_anchor_size_scales_offsets_and_exponential_sizes():
    anchor = np.array([[0.25, 0.75, 0.5, 0.2]], np.float32)
    d = decoder().decode(boxes(64, 64, 128, 128, 128, 0), logits(0.0), anchor)
    # centre = raw / 128 * anchor size + anchor centre; size = raw / 128 * anchor size
    np.testing.assert_allclose(d.xyxy, [[0.25, 0.75, 0.75, 0.95]], rtol=1e-6)
    np.testing.assert_allclose(d.keypoints, [[[0.75, 0.75]]])
    e = decoder(apply_exponential_on_box_size=True).decode(boxes(0, 0, 0, 128, 0, 0), logits(0.0), anchor)
    w, h = 0.5, np.e * 0.2
    np.testing.assert_allclose(e.xyxy, [[0.25 - w / 2, 0.75 - h / 2, 0.25 + w / 2, 0.75 + h / 2]], rtol=1e-6)


def test_sigmoid_clipping_and_threshold():
    anchors = np.repeat(CENTRE, 3, axis=0)
    calc = decoder(num_boxes=3, min_score_thresh=0.6)
    d = calc.decode(np.zeros((1, 3, 6), np.float32), logits(200.0, 0.4, 0.5), anchors)
    # 200 is clipped to 100 first; sigmoid(0.4) = 0.5987 < 0.6 is dropped; sigmoid(0.5) = 0.6225 kept.
    np.testing.assert_allclose(d.scores, [np.float32(1 / (1 + np.exp(-100.0))), 1 / (1 + np.exp(-0.5))], rtol=1e-6)
    low = decoder(score_clipping_thresh=10.0).decode(boxes(0, 0, 1, 1, 0, 0), logits(-500.0), CENTRE)
    np.testing.assert_allclose(low.scores, [1 / (1 + np.exp(10.0))], rtol=1e-6)  # clipped at -10 first
    raw = decoder(sigmoid_score=False).decode(boxes(0, 0, 1, 1, 0, 0), logits(3.5), CENTRE)
    assert raw.scores[0] == np.float32(3.5)


def test_negative_sizes_max_results_and_flip():
    anchors = np.repeat(CENTRE, 3, axis=0)
    raw = np.zeros((1, 3, 6), np.float32)
    raw[0, :, 2:4] = [[-8, 8], [16, 16], [32, 32]]  # the first box has a negative width
    d = decoder(num_boxes=3).decode(raw, logits(1, 1, 1), anchors)
    assert len(d) == 2  # anchor order is kept, nothing sorted
    np.testing.assert_allclose(d.xyxy[:, 2] - d.xyxy[:, 0], [0.125, 0.25])
    assert len(decoder(num_boxes=3, max_results=1).decode(raw, logits(1, 1, 1), anchors)) == 1
    f = decoder(flip_vertically=True).decode(boxes(0, -32, 32, 32, 0, -16), logits(0.0), CENTRE)
    np.testing.assert_allclose(f.xyxy, [[0.375, 0.625, 0.625, 0.875]])
    np.testing.assert_allclose(f.keypoints, [[[0.5, 0.625]]])


def test_classes_ignored_and_labelled():
    calc = decoder(num_classes=3, ignore_classes=(0,), labels=("bg", "face", "hand"))
    d = calc.decode(boxes(0, 0, 8, 8, 0, 0), np.array([[[5.0, 1.0, 2.0]]], np.float32), CENTRE)
    assert d.labels == ("hand",)
    np.testing.assert_allclose(d.scores, [1 / (1 + np.exp(-2.0))], rtol=1e-6)


RUNNER = """
    calculator: TensorsToDetectionsCalculator
    options: {num_classes: 1, num_boxes: 1, num_coords: 6, keypoint_coord_offset: 4, num_keypoints: 1,
              x_scale: 128.0, y_scale: 128.0, w_scale: 128.0, h_scale: 128.0, reverse_output_order: true,
              sigmoid_score: true, score_clipping_thresh: 100.0, min_score_thresh: 0.5}
"""


def test_caches_anchors_and_sends_detections_at_every_timestamp():
    face = Tensors((boxes(0, 0, 32, 32, 0, 0), logits(3.0)))
    nothing = Tensors((boxes(0, 0, 32, 32, 0, 0), logits(-3.0)))
    out = CalculatorRunner(RUNNER).run({"ANCHORS": [(0, CENTRE)],
                                        "TENSORS": [(0, face), (1, nothing), (5, face)]})
    got = [(p.timestamp, len(p.payload)) for p in out["DETECTIONS"]]
    assert got == [(0, 1), (1, 0), (5, 1)]
    assert out["DETECTIONS"][1].payload.keypoints.shape == (0, 1, 2)


def test_tensors_starting_after_the_anchors():
    face = Tensors((boxes(0, 0, 32, 32, 0, 0), logits(3.0)))
    out = CalculatorRunner(RUNNER).run({"ANCHORS": [(0, CENTRE)], "TENSORS": [(40, face), (80, face)]})
    assert [p.timestamp for p in out["DETECTIONS"]] == [40, 80]


def test_wrong_tensor_size_names_the_options():
    with pytest.raises(CalculatorError, match=r"regressors \(TENSORS\[0\]\): expected 1 x 6 = 6 values"):
        CalculatorRunner(RUNNER).run({"ANCHORS": [(0, CENTRE)],
                                      "TENSORS": [(0, Tensors((np.zeros((1, 1, 16), np.float32), logits(0))))]})


def test_missing_anchors_is_an_error():
    face = Tensors((boxes(0, 0, 32, 32, 0, 0), logits(3.0)))
    with pytest.raises(CalculatorError, match="no anchors"):
        CalculatorRunner(RUNNER).run({"TENSORS": [(0, face)]})


@pytest.mark.parametrize("bad, message", [
    ({"num_coords": 16}, "num_coords must be 4 \\+ num_keypoints"),
    ({"x_scale": 0.0}, "must all be > 0"),
    ({"box_format": "XY"}, "box_format must be one of"),
    ({"max_results": 0}, "max_results"),
])
def test_bad_options_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        decoder(**bad)
