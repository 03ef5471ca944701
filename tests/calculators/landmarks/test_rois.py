"""Regions of interest: detections to rects, rect transformation, hand landmarks to rect, association."""
import math

import numpy as np
import pytest

from pipelines.testing import CalculatorRunner
from pipelines.types import Detections, Landmarks, NormalizedRect

SIZE_200x100 = (200, 100)  # (width, height); fed as (timestamp, size) so the harness keeps it whole


def _dets(xyxy, keypoints):
    return Detections(np.array([xyxy], np.float32), np.array([0.9], np.float32), np.array([keypoints], np.float32))


def test_detections_to_rects_box_and_rotation_from_two_keypoints():
    runner = CalculatorRunner("""
        calculator: DetectionsToRectsCalculator
        options: {rotation_vector_start_keypoint_index: 0, rotation_vector_end_keypoint_index: 1,
                  rotation_vector_target_angle_degrees: 90}
    """)
    # Keypoint 0 -> 1 points right in pixels; turning it to point up is a quarter turn clockwise (+pi/2).
    dets = _dets([0.2, 0.3, 0.6, 0.5], [[0.5, 0.5], [0.75, 0.5]])
    out = runner.run({"DETECTIONS": [dets], "IMAGE_SIZE": [(0, SIZE_200x100)]})
    (rect,) = out["NORM_RECTS"][0].payload
    assert rect.x_center == pytest.approx(0.4) and rect.y_center == pytest.approx(0.4)
    assert rect.width == pytest.approx(0.4) and rect.height == pytest.approx(0.2)
    assert rect.rotation == pytest.approx(math.pi / 2)
    assert out["NORM_RECT"][0].payload == rect
    # Pointing down-left at 45 degrees in pixels (dx = -25 px, dy = +25 px): upright is 225 degrees away -> -135.
    dets = _dets([0.2, 0.3, 0.6, 0.5], [[0.5, 0.5], [0.375, 0.75]])
    (rect,) = runner.run({"DETECTIONS": [dets], "IMAGE_SIZE": [(0, SIZE_200x100)]})["NORM_RECTS"][0].payload
    assert rect.rotation == pytest.approx(math.radians(-135))


def test_detections_to_rects_keypoint_box_and_empty():
    runner = CalculatorRunner("calculator: DetectionsToRectsCalculator\noptions: {conversion_mode: keypoints}")
    dets = _dets([0, 0, 1, 1], [[0.1, 0.2], [0.3, 0.6], [0.2, 0.4]])
    out = runner.run({"DETECTIONS": [dets, Detections.empty(3)]})
    assert [p.timestamp for p in out["NORM_RECTS"]] == [0]  # empty detections: nothing
    rect = out["NORM_RECT"][0].payload
    assert (rect.x_center, rect.y_center, rect.width, rect.height) == pytest.approx((0.2, 0.4, 0.2, 0.4))
    zero = CalculatorRunner("calculator: DetectionsToRectsCalculator\n"
                            "options: {output_zero_rect_for_empty_detections: true}")
    assert zero.run({"DETECTIONS": [Detections.empty()]})["NORM_RECTS"][0].payload == (NormalizedRect(0, 0, 0, 0),)


def _transform(options, rect, size=SIZE_200x100):
    runner = CalculatorRunner(f"calculator: RectTransformationCalculator\noptions: {options}")
    return runner.run({"NORM_RECT": [rect], "IMAGE_SIZE": [(0, size)]})["NORM_RECT"][0].payload


def test_rect_transformation_shift_follows_rotation_square_and_scale():
    # 0.2 x 0.4 of a 200x100 image is 40 x 40 px. Shifting up by half its height: 20 px = 0.2 of the height.
    up = _transform("{shift_y: -0.5, scale_x: 2, scale_y: 2}", NormalizedRect(0.5, 0.5, 0.2, 0.4))
    assert (up.x_center, up.y_center, up.width, up.height) == pytest.approx((0.5, 0.3, 0.4, 0.8))
    # The same rect turned a quarter clockwise: its "up" is the image's right, 20 px = 0.1 of the width.
    turned = _transform("{shift_y: -0.5}", NormalizedRect(0.5, 0.5, 0.2, 0.4, math.pi / 2))
    assert (turned.x_center, turned.y_center) == pytest.approx((0.6, 0.5))
    assert turned.rotation == pytest.approx(math.pi / 2)
    # 20 x 40 px squared on the long side: 40 x 40 px.
    square = _transform("{square_long: true}", NormalizedRect(0.5, 0.5, 0.1, 0.4))
    assert (square.width, square.height) == pytest.approx((0.2, 0.4))
    short = _transform("{square_short: true}", NormalizedRect(0.5, 0.5, 0.1, 0.4))
    assert (short.width, short.height) == pytest.approx((0.1, 0.2))


def _hand(points: dict[int, tuple[float, float]]) -> Landmarks:
    xyz = np.full((21, 3), 0.0, np.float32)
    xyz[:, :2] = (0.95, 0.02)  # fingertips and the rest: far away, and not part of MediaPipe's rule
    for i, (x, y) in points.items():
        xyz[i, :2] = (x, y)
    return Landmarks(xyz)


UPRIGHT_PALM = {0: (0.5, 0.8), 1: (0.4, 0.7), 2: (0.4, 0.6), 3: (0.4, 0.5), 5: (0.45, 0.4), 6: (0.45, 0.3),
                9: (0.5, 0.4), 10: (0.5, 0.3), 13: (0.55, 0.4), 14: (0.55, 0.3), 17: (0.6, 0.45), 18: (0.6, 0.35)}


def test_hand_landmarks_to_rect_upright_and_turned():
    runner = CalculatorRunner("calculator: HandLandmarksToRectCalculator")
    # Upright hand on a square image: the box of the 12 palm points, no rotation.
    rect = runner.run({"NORM_LANDMARKS": [_hand(UPRIGHT_PALM)], "IMAGE_SIZE": [(0, (100, 100))]})["NORM_RECT"][0].payload
    assert (rect.x_center, rect.y_center, rect.width, rect.height) == pytest.approx((0.5, 0.55, 0.2, 0.5), abs=1e-6)
    assert rect.rotation == pytest.approx(0.0, abs=1e-6)
    # The same hand turned a quarter clockwise about the image centre: (dx, dy) -> (-dy, dx).
    turned = {i: (0.5 - (y - 0.5), 0.5 + (x - 0.5)) for i, (x, y) in UPRIGHT_PALM.items()}
    rect = runner.run({"NORM_LANDMARKS": [_hand(turned)], "IMAGE_SIZE": [(0, (100, 100))]})["NORM_RECT"][0].payload
    assert (rect.x_center, rect.y_center, rect.width, rect.height) == pytest.approx((0.45, 0.5, 0.2, 0.5), abs=1e-6)
    assert rect.rotation == pytest.approx(math.pi / 2, abs=1e-6)


def test_association_keeps_the_later_of_overlapping_rects():
    a, b = NormalizedRect(0.3, 0.3, 0.2, 0.2), NormalizedRect(0.7, 0.7, 0.2, 0.2)
    tracked = NormalizedRect(0.31, 0.3, 0.2, 0.2, 0.1)  # IoU with a: 0.038 / 0.042 = 0.905
    from pipelines import Graph
    graph = Graph.from_string("""
inputs: [from_detector, from_tracking]
outputs: [rects]
nodes:
  - calculator: AssociationNormRectCalculator
    inputs: {NORM_RECTS: [from_detector, from_tracking]}
    outputs: {NORM_RECTS: rects}
    options: {min_similarity_threshold: 0.5}
""")
    out = graph.run({"from_detector": [(a, b), ()], "from_tracking": [(tracked,), (tracked,)]}, outputs=["rects"],
                    timeout=10)
    assert [p.payload for p in out["rects"]] == [(b, tracked), (tracked,)]
    # Within one list too: the later of two overlapping rects stays.
    from calculators.landmarks.association_norm_rect import associate
    assert associate([(a, b, tracked)], 0.5) == (b, tracked)


def test_association_first_norm_rects_are_the_first_streams_survivors():
    # The hands graph's split: FIRST_NORM_RECTS (new hands) followed by the tracked list deduplicated on its own
    # is exactly the merged list, in order, whatever overlaps whatever.
    from calculators.landmarks.association_norm_rect import associate
    a, b = NormalizedRect(0.3, 0.3, 0.2, 0.2), NormalizedRect(0.7, 0.7, 0.2, 0.2)
    tracked = NormalizedRect(0.31, 0.3, 0.2, 0.2, 0.1)
    tracked_twice = NormalizedRect(0.71, 0.7, 0.2, 0.2)  # overlaps b
    from pipelines import Graph
    graph = Graph.from_string("""
inputs: [from_detector, from_tracking]
outputs: [rects, new_rects]
nodes:
  - calculator: AssociationNormRectCalculator
    inputs: {NORM_RECTS: [from_detector, from_tracking]}
    outputs: {NORM_RECTS: rects, FIRST_NORM_RECTS: new_rects}
    options: {min_similarity_threshold: 0.5}
""")
    detector = [(a, b), (), (a, b), (a, b)]
    tracking = [(tracked,), (tracked,), (), (tracked, tracked_twice)]
    out = graph.run({"from_detector": detector, "from_tracking": tracking}, outputs=["rects", "new_rects"],
                    timeout=10)
    assert [p.payload for p in out["new_rects"]] == [(b,), (), (a, b), ()]
    for merged, new, tracks in zip(out["rects"], out["new_rects"], tracking):
        assert merged.payload == new.payload + associate([tracks], 0.5)
