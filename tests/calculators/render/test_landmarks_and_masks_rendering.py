"""Landmarks and connections to RenderData, drawn by the overlay; mask overlay and background replacement."""
import numpy as np
import pytest

from calculators.render.annotation_overlay import draw
from calculators.render.connections import FACE_CONTOURS, FACE_TESSELATION, HAND, POSE
from pipelines import Packet
from pipelines.testing import CalculatorRunner
from pipelines.types import Frame, Landmarks, Mask


def test_connection_tables_cover_each_model_layout():
    assert sorted({i for chain in HAND for i in chain}) == list(range(21))
    assert sorted({i for chain in POSE for i in chain}) == list(range(33))
    assert len(FACE_TESSELATION) == 852 and {i for tri in FACE_TESSELATION for i in tri} == set(range(468))
    assert all(0 <= i < 468 for chain in FACE_CONTOURS for i in chain)


def _hand() -> Landmarks:
    xyz = np.zeros((21, 3), np.float32)
    xyz[:, 0] = np.linspace(0.1, 0.9, 21)
    xyz[:, 1] = 0.5
    return Landmarks(xyz)


def test_hand_landmarks_to_render_data_and_drawn():
    pytest.importorskip("cv2", reason="the overlay draws with OpenCV")
    runner = CalculatorRunner("calculator: LandmarksToRenderDataCalculator\n"
                              "options: {connections: hand, landmark_color: [255, 0, 0], connection_color: [0, 255, 0]}")
    out = runner.run({"LANDMARKS": [_hand(), [_hand(), _hand()], []]})
    data = [p.payload for p in out["RENDER_DATA"]]
    assert len(data[0].points) == 21 and len(data[0].lines) == len(HAND)
    assert data[0].lines[0][0][0] == pytest.approx((0.1, 0.5)) and data[0].lines[0][1] == (0, 255, 0)
    assert len(data[1].points) == 42  # a list of hands: all drawn
    assert data[2].points == () and data[2].lines == ()  # nothing found: an empty RenderData
    image = np.zeros((100, 200, 3), np.uint8)
    draw(image, data[0])
    assert image[50, 100, 0] == 255 or image[50, 100, 1] == 255  # a landmark or a bone on the hand's line
    assert image[10, 100].sum() == 0  # nothing drawn far from it


def test_pose_landmarks_below_visibility_are_not_drawn():
    xyz = np.random.default_rng(0).uniform(0.2, 0.8, (33, 3)).astype(np.float32)
    visibility = np.ones(33, np.float32)
    visibility[13] = 0.1  # the left elbow is hidden: the arm chain 11-13-15-... breaks there
    runner = CalculatorRunner("calculator: LandmarksToRenderDataCalculator\n"
                              "options: {connections: pose, visibility_threshold: 0.5}")
    data = runner.run({"LANDMARKS": [Landmarks(xyz, visibility=visibility)]})["RENDER_DATA"][0].payload
    assert len(data.points) == 32
    elbow = tuple(xyz[13, :2].astype(np.float64))
    assert all(elbow not in line for line, _ in data.lines)


def _frame(value=100):
    return Frame(np.full((4, 6, 3), value, np.uint8))


def _mask(left_value, right_value):
    p = np.zeros((4, 6), np.float32)
    p[:, :3], p[:, 3:] = left_value, right_value
    return Mask(p)


def test_mask_overlay_tints_by_probability():
    runner = CalculatorRunner("calculator: MaskOverlayCalculator\noptions: {color: [200, 0, 100], opacity: 0.5}")
    out = runner.run({"IMAGE": [_frame(), _frame()], "MASK": [(0, _mask(1.0, 0.0))]})
    tinted = out["IMAGE"][0].payload.image
    assert tinted[0, 0].tolist() == [150, 50, 100]  # 100 + (color - 100) * 0.5
    assert tinted[0, 5].tolist() == [100, 100, 100]
    assert out["IMAGE"][1].payload.image.tolist() == _frame().image.tolist()  # no mask: unchanged


def test_background_replacement_colour_image_and_threshold():
    pytest.importorskip("cv2", reason="BackgroundReplacementCalculator resizes and blurs with OpenCV")
    color = CalculatorRunner("calculator: BackgroundReplacementCalculator\noptions: {mode: color, color: [0, 0, 0]}")
    out = color.run({"IMAGE": [_frame()], "MASK": [_mask(1.0, 0.25)]})["IMAGE"][0].payload.image
    assert out[0, 0].tolist() == [100, 100, 100] and out[0, 5].tolist() == [25, 25, 25]
    thresholded = CalculatorRunner("calculator: BackgroundReplacementCalculator\n"
                                   "options: {mode: image, threshold: 0.1}")
    behind = Frame(np.full((8, 12, 3), 7, np.uint8))
    out = thresholded.run({"IMAGE": [_frame()], "MASK": [_mask(1.0, 0.05)], "BACKGROUND": [behind]})
    image = out["IMAGE"][0].payload.image
    assert image[0, 0].tolist() == [100, 100, 100] and image[0, 5].tolist() == [7, 7, 7]
    blur = CalculatorRunner("calculator: BackgroundReplacementCalculator\noptions: {mode: blur, blur_kernel: 3}")
    checker = np.zeros((4, 6, 3), np.uint8)
    checker[::2, ::2] = 255
    out = blur.run({"IMAGE": [Frame(checker)], "MASK": [_mask(0.0, 0.0)]})["IMAGE"][0].payload.image
    assert 0 < int(out[1, 1, 0]) < 255  # all background, blurred
