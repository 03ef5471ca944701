"""The model side of a landmark solution: a rotated ROI into the model input, the output decoded, and the
landmarks projected back to the image."""
import math

import numpy as np
import pytest

from pipelines.testing import CalculatorRunner
from pipelines.types import Frame, Landmarks, LetterboxPadding, NormalizedRect, Tensors


def _left_white_right_black(size=100) -> Frame:
    image = np.zeros((size, size, 3), np.uint8)
    image[:, : size // 2] = 255
    return Frame(image)


def test_image_to_tensor_on_a_rotated_roi_and_its_matrix():
    runner = CalculatorRunner("""
        calculator: ImageToTensorCalculator
        options: {output_width: 10, output_height: 10, float_range: [0.0, 1.0], border: replicate,
                  whole_frame_without_rect: false}
    """)
    quarter = NormalizedRect(0.5, 0.5, 1.0, 1.0, math.pi / 2)  # the whole image, turned a quarter clockwise
    out = runner.run({"IMAGE": [_left_white_right_black(), _left_white_right_black()], "NORM_RECT": [(0, quarter)]})
    assert [p.timestamp for p in out["TENSORS"]] == [0]  # no rect at 1: no tensor
    tensor = out["TENSORS"][0].payload[0][0]
    # The ROI's top edge lies along the image's right side (black), its bottom along the left side (white).
    assert np.all(tensor[:4] == 0.0) and np.all(tensor[6:] == 1.0)
    # MATRIX takes tensor-relative (x, y) to image-relative (1 - y, x): the tensor's top middle is the right edge.
    matrix = out["MATRIX"][0].payload
    assert matrix @ np.array([0.5, 0.05, 0.0, 1.0]) == pytest.approx([0.95, 0.5, 0.0, 1.0], abs=1e-6)
    assert out["LETTERBOX_PADDING"][0].payload == LetterboxPadding()
    # A zero rect (MediaPipe's "no region") or a degenerate one gives no tensor and no error.
    frames = [_left_white_right_black() for _ in range(2)]
    out = runner.run({"IMAGE": frames, "NORM_RECT": [(0, NormalizedRect(0.5, 0.5, 0.0, 0.0)),
                                                     (1, NormalizedRect(0.5, float("nan"), 0.2, 0.2))]})
    assert out["TENSORS"] == []


def test_image_to_tensor_letterboxes_a_wide_roi_and_the_matrix_includes_it():
    runner = CalculatorRunner("calculator: ImageToTensorCalculator\noptions: {output_width: 8, output_height: 8}")
    wide = NormalizedRect(0.5, 0.5, 1.0, 0.5)  # 100 x 50 px in a 100 x 100 image: padded to 100 x 100
    out = runner.run({"IMAGE": [_left_white_right_black()], "NORM_RECT": [(0, wide)]})
    assert out["LETTERBOX_PADDING"][0].payload == LetterboxPadding(0.0, 0.25, 0.0, 0.25)
    matrix = out["MATRIX"][0].payload
    assert matrix @ np.array([0.0, 0.0, 0.0, 1.0]) == pytest.approx([0.0, 0.0, 0.0, 1.0], abs=1e-6)


def test_tensors_to_landmarks_normalizes_and_activates():
    raw = np.array([[112.0, 56.0, 22.4, 0.0, 100.0], [0.0, 224.0, -44.8, 2.0, -100.0]], np.float32)
    runner = CalculatorRunner("""
        calculator: TensorsToLandmarksCalculator
        options: {num_landmarks: 2, input_image_width: 224, input_image_height: 224, normalize_z: 0.4,
                  visibility_activation: sigmoid, presence_activation: sigmoid, tensor_index: 1}
    """)
    out = runner.run({"TENSORS": [Tensors((np.zeros(3, np.float32), raw.reshape(1, 10)))]})
    norm = out["NORM_LANDMARKS"][0].payload
    # z / width / normalize_z: 22.4 / 224 / 0.4 = 0.25
    assert norm.xyz == pytest.approx(np.array([[0.5, 0.25, 0.25], [0.0, 1.0, -0.5]]), abs=1e-6)
    assert norm.visibility == pytest.approx([0.5, 1 / (1 + math.exp(-2))])
    assert norm.presence == pytest.approx([1.0, 0.0], abs=1e-6)
    assert not out["LANDMARKS"][0].payload.relative and out["LANDMARKS"][0].payload.xyz[0, 0] == 112.0
    flipped = CalculatorRunner("calculator: TensorsToLandmarksCalculator\n"
                               "options: {num_landmarks: 1, input_image_width: 100, flip_horizontally: true}")
    raw = flipped.run({"TENSORS": [Tensors((np.array([[30.0, 5.0, 1.0]], np.float32),))]})["LANDMARKS"][0].payload
    assert raw.xyz[0] == pytest.approx([70.0, 5.0, 1.0]) and raw.visibility is None


def test_letterbox_removal_of_landmarks():
    runner = CalculatorRunner("calculator: LandmarkLetterboxRemovalCalculator")
    lms = Landmarks(np.array([[0.5, 0.5, 0.1], [0.25, 0.0, 0.0]], np.float32))
    out = runner.run({"LANDMARKS": [lms], "LETTERBOX_PADDING": [LetterboxPadding(0.25, 0.0, 0.25, 0.0)]})
    assert out["LANDMARKS"][0].payload.xyz == pytest.approx(np.array([[0.5, 0.5, 0.2], [0.0, 0.0, 0.0]]))


def test_projection_through_a_quarter_turned_rect_lands_on_a_known_pixel():
    # The ROI: the central half of a 200 x 200 image, turned a quarter clockwise. Its top middle (0.5, 0) lies
    # half the ROI's height (50 px) from its centre in the ROI's "up" direction, which is the image's right.
    rect = NormalizedRect(0.5, 0.5, 0.5, 0.5, math.pi / 2)
    lms = Landmarks(np.array([[0.5, 0.0, 0.2], [0.0, 0.0, 0.0]], np.float32))
    by_rect = CalculatorRunner("calculator: LandmarkProjectionCalculator").run(
        {"NORM_LANDMARKS": [lms], "NORM_RECT": [rect]})["NORM_LANDMARKS"][0].payload
    assert by_rect.xyz[0] * 200 == pytest.approx([150.0, 100.0, 20.0], abs=1e-4)  # z scaled like x: 0.2 * 100 px
    assert by_rect.xyz[1] * 200 == pytest.approx([150.0, 50.0, 0.0], abs=1e-4)  # top left -> top right
    with_size = CalculatorRunner("calculator: LandmarkProjectionCalculator").run(
        {"NORM_LANDMARKS": [lms], "NORM_RECT": [rect], "IMAGE_SIZE": [(0, (200, 200))]})["NORM_LANDMARKS"][0].payload
    assert with_size.xyz == pytest.approx(by_rect.xyz, abs=1e-6)


def test_projection_by_matrix_from_image_to_tensor_round_trip():
    """A landmark at a known image pixel, seen through a rotated, letterboxed ROI, projects back onto that pixel."""
    image = np.zeros((120, 160, 3), np.uint8)
    rect = NormalizedRect(0.4, 0.6, 0.3, 0.2, 0.7)
    tensor = CalculatorRunner("calculator: ImageToTensorCalculator\noptions: {output_width: 32, output_height: 32}")
    matrix = tensor.run({"IMAGE": [Frame(image)], "NORM_RECT": [(0, rect)]})["MATRIX"][0].payload
    on_tensor = np.array([0.3, 0.8, 0.0, 1.0])
    expected = (matrix @ on_tensor)[:2]
    lms = Landmarks(np.array([[0.3, 0.8, 0.5]], np.float32))
    projected = CalculatorRunner("calculator: LandmarkProjectionCalculator").run(
        {"NORM_LANDMARKS": [lms], "PROJECTION_MATRIX": [matrix]})["NORM_LANDMARKS"][0].payload
    assert projected.xyz[0, :2] == pytest.approx(expected, abs=1e-6)
    # z scales by the length of the ROI's unit x segment in image-relative units (MediaPipe's CalculateZScale):
    # the padded ROI is 48 px wide (the long side), turned by 0.7 rad, in a 160 x 120 image.
    z_scale = math.hypot(48 * math.cos(0.7) / 160, 48 * math.sin(0.7) / 120)
    assert projected.xyz[0, 2] == pytest.approx(0.5 * z_scale, abs=1e-6)


def test_world_landmark_projection_turns_by_the_rect():
    lms = Landmarks(np.array([[0.1, 0.0, 0.3]], np.float32), relative=False, world=True)
    out = CalculatorRunner("calculator: WorldLandmarkProjectionCalculator").run(
        {"LANDMARKS": [lms], "NORM_RECT": [NormalizedRect(0.5, 0.5, 0.2, 0.2, math.pi / 2)]})
    assert out["LANDMARKS"][0].payload.xyz[0] == pytest.approx([0.0, 0.1, 0.3], abs=1e-7)


def test_tensors_to_floats_and_binary_classification():
    tensors = Tensors((np.zeros((1, 63), np.float32), np.array([[0.8]], np.float32), np.array([[0.3]], np.float32)))
    floats = CalculatorRunner("calculator: TensorsToFloatsCalculator\noptions: {tensor_index: 1}").run(
        {"TENSORS": [tensors]})
    assert floats["FLOAT"][0].payload == pytest.approx(0.8)
    hands = CalculatorRunner("calculator: TensorsToClassificationCalculator\n"
                             "options: {tensor_index: 2, binary_classification: true, top_k: 1, labels: [Left, Right]}")
    (best,) = hands.run({"TENSORS": [tensors]})["CLASSIFICATIONS"][0].payload
    assert (best.label, best.index) == ("Right", 1) and best.score == pytest.approx(0.7)
