"""Landmark smoothing (one-euro and velocity filters, reset when tracking is lost) and the pose ROI rules."""
import math

import numpy as np
import pytest

from calculators.landmarks.filters import OneEuroFilter, RelativeVelocityFilter
from pipelines import Packet
from pipelines.testing import CalculatorRunner
from pipelines.types import Detections, Frame, Landmarks

IMAGE = Frame(np.zeros((100, 100, 3), np.uint8))


def _alpha(cutoff, frequency):
    return 1.0 / (1.0 + (1.0 / (2 * math.pi * cutoff)) / (1.0 / frequency))


def _one_point(x):
    return Landmarks(np.array([[x, 0.5, 0.0]], np.float32))


def test_one_euro_filter_on_a_step_matches_the_formula():
    """Step 0 -> 50 px at 0.1 s, held at 0.2 s; min_cutoff 1, beta 0.5, derivate_cutoff 1, first guess 30 Hz."""
    runner = CalculatorRunner("""
        calculator: LandmarksSmoothingCalculator
        options: {filter: one_euro, frequency: 30, min_cutoff: 1.0, beta: 0.5, derivate_cutoff: 1.0,
                  disable_value_scaling: true}
    """)
    out = runner.run({"NORM_LANDMARKS": [(0, _one_point(0.0)), (100_000, _one_point(0.5)), (200_000, _one_point(0.5))],
                      "IMAGE": [Packet(t, IMAGE) for t in (0, 100_000, 200_000)]})
    xs = [p.payload.xyz[0, 0] * 100 for p in out["NORM_FILTERED_LANDMARKS"]]
    # t = 0: the first sample passes. t = 0.1 s: the last sample was at 0, so the rate stays the 30 Hz guess
    # (MediaPipe's rule); the speed 50 px * 30 Hz, low-passed, raises the cutoff.
    ed2 = _alpha(1.0, 30) * 50 * 30
    x2 = _alpha(1.0 + 0.5 * ed2, 30) * 50
    # t = 0.2 s: 10 Hz, no movement since the last raw sample: the speed estimate decays, x closes in on 50.
    ed3 = (1 - _alpha(1.0, 10)) * ed2
    x3 = _alpha(1.0 + 0.5 * ed3, 10) * 50 + (1 - _alpha(1.0 + 0.5 * ed3, 10)) * x2
    assert xs == pytest.approx([0.0, x2, x3], rel=1e-5)
    assert 0 < x2 < x3 < 50


def test_smoothing_restarts_when_tracking_is_lost():
    runner = CalculatorRunner("""
        calculator: LandmarksSmoothingCalculator
        options: {filter: one_euro, min_cutoff: 0.05, beta: 0.0}
    """)
    # Timestamp 2 has a frame but no landmarks: the object at 3 is new and passes unfiltered.
    out = runner.run({"NORM_LANDMARKS": [(1, _one_point(0.2)), (3, _one_point(0.8))],
                      "IMAGE": [Packet(t, IMAGE) for t in (1, 2, 3)]})
    assert [(p.timestamp, float(p.payload.xyz[0, 0])) for p in out["NORM_FILTERED_LANDMARKS"]] == [
        (1, pytest.approx(0.2)), (3, pytest.approx(0.8))]


def test_velocity_filter_holds_when_still_and_follows_when_fast():
    f = RelativeVelocityFilter(window_size=5, velocity_scale=10.0)
    assert f.apply(0, 10.0) == 10.0  # the first sample passes (alpha 1)
    # 33 ms later, moved by 1 (value scale 1): velocity 1 / 0.033 s = 30, alpha = 1 - 1 / (1 + 300).
    alpha = 1 - 1 / (1 + 10.0 * abs(1.0 / 0.033))
    assert f.apply(33_000, 11.0) == pytest.approx(alpha * 11.0 + (1 - alpha) * 10.0)
    still = OneEuroFilter(30.0, 1.0, 0.0, 1.0)
    assert still.apply(0, 5.0) == 5.0 and still.apply(33_333, 5.0) == pytest.approx(5.0)


def test_visibility_smoothing_low_pass():
    lms = [Landmarks(np.zeros((1, 3), np.float32), visibility=np.array([v], np.float32)) for v in (1.0, 0.0)]
    out = CalculatorRunner("calculator: VisibilitySmoothingCalculator\noptions: {alpha: 0.1}").run(
        {"NORM_LANDMARKS": lms})
    assert [float(p.payload.visibility[0]) for p in out["NORM_FILTERED_LANDMARKS"]] == pytest.approx([1.0, 0.9])


def test_landmarks_to_detection_and_alignment_points_rect():
    xyz = np.zeros((35, 3), np.float32)
    xyz[33, :2] = (0.5, 0.6)  # the hips' middle
    xyz[34, :2] = (0.5, 0.4)  # straight above it, 20 px away in a 100 x 100 image
    det_out = CalculatorRunner("calculator: LandmarksToDetectionCalculator\n"
                               "options: {selected_landmark_indices: [33, 34]}").run({"NORM_LANDMARKS": [Landmarks(xyz)]})
    dets = det_out["DETECTIONS"][0].payload
    assert dets.xyxy[0] == pytest.approx([0.5, 0.4, 0.5, 0.6]) and dets.keypoints.shape == (1, 2, 2)
    runner = CalculatorRunner("""
        calculator: AlignmentPointsRectsCalculator
        options: {rotation_vector_start_keypoint_index: 0, rotation_vector_end_keypoint_index: 1,
                  rotation_vector_target_angle_degrees: 90}
    """)
    rect = runner.run({"DETECTIONS": [dets], "IMAGE": [IMAGE]})["NORM_RECT"][0].payload
    # Centred on the hips, a square of twice the 20 px distance, upright (already pointing up: no rotation).
    assert (rect.x_center, rect.y_center, rect.width, rect.height) == pytest.approx((0.5, 0.6, 0.4, 0.4))
    assert rect.rotation == pytest.approx(0.0)
    # Lying down, head to the right: the body's up is the image's right, a quarter turn clockwise.
    lying = Detections(np.zeros((1, 4), np.float32), np.ones(1, np.float32),
                       np.array([[[0.5, 0.5], [0.7, 0.5]]], np.float32))
    rect = runner.run({"DETECTIONS": [lying], "IMAGE": [IMAGE]})["NORM_RECT"][0].payload
    assert rect.rotation == pytest.approx(math.pi / 2)


def test_refine_landmarks_from_heatmap_moves_to_the_peak():
    from pipelines.types import Tensors

    heatmap = np.full((1, 8, 8, 2), -10.0, np.float32)
    heatmap[0, 2, 5, 0] = 10.0  # landmark 0's peak: row 2, column 5; landmark 1 has no confident cell
    lms = Landmarks(np.array([[0.6, 0.3, 0.1], [0.6, 0.3, 0.1]], np.float32),
                    visibility=np.array([0.9, 0.9], np.float32))
    runner = CalculatorRunner("calculator: RefineLandmarksFromHeatmapCalculator\n"
                              "options: {kernel_size: 3, refine_visibility: true}")
    out = runner.run({"NORM_LANDMARKS": [lms], "TENSORS": [Tensors((heatmap,))]})["NORM_LANDMARKS"][0].payload
    # Window: rows 1-3, columns 3-5 around (int(0.6 * 8), int(0.3 * 8)) = (4, 2).
    hi, lo = 1 / (1 + math.exp(-10)), 1 / (1 + math.exp(10))
    total = hi + 8 * lo
    x = (5 * hi + lo * (3 + 4 + 5) * 3 - lo * 5) / total / 8
    y = (2 * hi + lo * (1 + 2 + 3) * 3 - lo * 2) / total / 8
    assert out.xyz[0] == pytest.approx([x, y, 0.1], abs=1e-6)
    assert out.xyz[1] == pytest.approx([0.6, 0.3, 0.1])  # peak below min_confidence_to_refine: unmoved
    assert out.visibility == pytest.approx([0.9, lo])  # capped by the window's peak


def test_split_landmarks_by_ranges():
    xyz = np.arange(35 * 3, dtype=np.float32).reshape(35, 3)
    from pipelines import Graph

    graph = Graph.from_string("""
inputs: [all]
outputs: [body, aux]
nodes:
  - calculator: SplitLandmarksCalculator
    inputs: {IN: all}
    outputs: {OUT: [body, aux]}
    options: {ranges: [[0, 33], [33, 35]]}
""")
    out = graph.run({"all": [Landmarks(xyz, visibility=np.ones(35, np.float32))]}, outputs=["body", "aux"], timeout=10)
    assert len(out["body"][0].payload) == 33 and out["aux"][0].payload.xyz[0, 0] == 99.0
    assert out["aux"][0].payload.visibility.shape == (2,)
