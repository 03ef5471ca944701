"""SsdAnchorsCalculator: MediaPipe's anchor layout, checked against values worked out by hand."""
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from calculators.detection.ssd_anchors import SsdAnchorsCalculator, generate_anchors
from pipelines.testing import CalculatorRunner

OPTIONS_JSON = Path(__file__).resolve().parents[3] / "assets/models/face_detection_graph_options.json"
Options = SsdAnchorsCalculator.Options


def face_options(model: str) -> Options:
    raw = json.loads(OPTIONS_JSON.read_text())[model]["ssd_anchors"]
    names = {f.name for f in dataclasses.fields(Options)}
    return Options(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in names})


def test_short_range_has_896_anchors_in_mediapipe_order():
    a = generate_anchors(face_options("short_range"))
    assert a.shape == (896, 4) and a.dtype == np.float32
    # Stride 8: a 16x16 grid, 2 anchors per cell (aspect 1 + interpolated), all of size 1.
    np.testing.assert_allclose(a[0], [0.5 / 16, 0.5 / 16, 1, 1])
    np.testing.assert_array_equal(a[0], a[1])
    np.testing.assert_allclose(a[2], [1.5 / 16, 0.5 / 16, 1, 1])  # next column
    np.testing.assert_allclose(a[32], [0.5 / 16, 1.5 / 16, 1, 1])  # next row
    np.testing.assert_allclose(a[511], [15.5 / 16, 15.5 / 16, 1, 1])
    # The three stride-16 layers share one 8x8 grid: 6 anchors per cell.
    np.testing.assert_allclose(a[512:518], [[0.5 / 8, 0.5 / 8, 1, 1]] * 6)
    np.testing.assert_allclose(a[518], [1.5 / 8, 0.5 / 8, 1, 1])
    np.testing.assert_allclose(a[-1], [7.5 / 8, 7.5 / 8, 1, 1])


def test_full_range_has_2304_anchors_one_per_cell():
    a = generate_anchors(face_options("full_range"))
    assert a.shape == (2304, 4)
    np.testing.assert_allclose(a[0], [0.5 / 48, 0.5 / 48, 1, 1])
    np.testing.assert_allclose(a[1], [1.5 / 48, 0.5 / 48, 1, 1])
    np.testing.assert_allclose(a[48], [0.5 / 48, 1.5 / 48, 1, 1])
    np.testing.assert_allclose(a[-1], [47.5 / 48, 47.5 / 48, 1, 1])


def test_sizes_follow_scales_aspect_ratios_and_interpolation():
    o = Options(input_size_width=32, input_size_height=32, min_scale=0.2, max_scale=0.9, num_layers=2,
                strides=(8, 16), aspect_ratios=(1.0, 2.0), interpolated_scale_aspect_ratio=1.0)
    a = generate_anchors(o)
    assert a.shape == (4 * 4 * 3 + 2 * 2 * 3, 4)
    s2 = math.sqrt(2)
    # Layer 0: scale 0.2; aspect 1, aspect 2, then sqrt(0.2 * 0.9) (scale of the next layer) at aspect 1.
    expected0 = [[0.2, 0.2], [0.2 * s2, 0.2 / s2], [math.sqrt(0.18)] * 2]
    np.testing.assert_allclose(a[:3, 2:], expected0, rtol=1e-6)
    np.testing.assert_allclose(a[:3, :2], [[1 / 8, 1 / 8]] * 3)
    # Last layer: scale 0.9; its interpolated anchor uses 1.0 as the next scale.
    expected1 = [[0.9, 0.9], [0.9 * s2, 0.9 / s2], [math.sqrt(0.9)] * 2]
    np.testing.assert_allclose(a[48:51, 2:], expected1, rtol=1e-6)
    np.testing.assert_allclose(a[-1, :2], [0.75, 0.75])


def test_reduce_boxes_in_lowest_layer_uses_predefined_anchors():
    o = Options(input_size_width=16, input_size_height=16, min_scale=0.2, max_scale=0.8, num_layers=2,
                strides=(8, 16), aspect_ratios=(1.0,), reduce_boxes_in_lowest_layer=True,
                interpolated_scale_aspect_ratio=0.0)
    a = generate_anchors(o)
    assert a.shape == (2 * 2 * 3 + 1, 4)
    s2 = math.sqrt(2)
    np.testing.assert_allclose(a[:3, 2:], [[0.1, 0.1], [0.2 * s2, 0.2 / s2], [0.2 / s2, 0.2 * s2]], rtol=1e-6)
    np.testing.assert_allclose(a[-1], [0.5, 0.5, 0.8, 0.8], rtol=1e-6)


def test_feature_maps_override_strides_and_offsets_apply():
    o = Options(input_size_width=100, input_size_height=100, min_scale=0.5, max_scale=0.5, num_layers=1,
                strides=(8,), feature_map_width=(3,), feature_map_height=(2,), aspect_ratios=(1.0,),
                interpolated_scale_aspect_ratio=0.0, anchor_offset_x=0.0, anchor_offset_y=1.0)
    a = generate_anchors(o)
    np.testing.assert_allclose(a[:, :2], [[0, 0.5], [1 / 3, 0.5], [2 / 3, 0.5], [0, 1], [1 / 3, 1], [2 / 3, 1]])


def test_calculator_sends_anchors_once_at_timestamp_zero():
    out = CalculatorRunner("""
        calculator: SsdAnchorsCalculator
        options: {num_layers: 1, min_scale: 0.1484375, max_scale: 0.75, input_size_width: 192,
                  input_size_height: 192, strides: [4], aspect_ratios: [1.0],
                  interpolated_scale_aspect_ratio: 0.0, fixed_anchor_size: true}
    """).run()
    (packet,) = out["ANCHORS"]
    assert packet.timestamp == 0 and packet.payload.shape == (2304, 4)


@pytest.mark.parametrize("bad, message", [
    ({"strides": (8,)}, "strides needs num_layers"),
    ({"num_layers": 0, "strides": ()}, "num_layers must be >= 1"),
    ({"feature_map_width": (4,), "feature_map_height": ()}, "feature_map_width and feature_map_height"),
    ({"aspect_ratios": (), "interpolated_scale_aspect_ratio": 0.0}, "no anchors per cell"),
])
def test_bad_options_are_refused(bad, message):
    base = dict(input_size_width=64, input_size_height=64, min_scale=0.1, max_scale=0.7, num_layers=2,
                strides=(8, 16), aspect_ratios=(1.0,))
    with pytest.raises(ValueError, match=message):
        Options(**{**base, **bad})
