"""TensorsToSegmentationCalculator and SegmentationSmoothingCalculator."""
import math

import numpy as np
import pytest

from calculators.segmentation.segmentation_smoothing import smooth
from pipelines import Packet
from pipelines.testing import CalculatorRunner
from pipelines.types import Frame, Mask, Tensors

FRAME = Frame(np.zeros((8, 8, 3), np.uint8))


def test_tensors_to_segmentation_activations_and_resize():
    logits = np.zeros((1, 2, 2, 1), np.float32)
    logits[0, 0, 0, 0] = 2.0
    sigmoid = CalculatorRunner("calculator: TensorsToSegmentationCalculator\noptions: {activation: sigmoid}")
    mask = sigmoid.run({"TENSORS": [Tensors((logits,))], "IMAGE": [FRAME]})["MASK"][0].payload
    assert mask.probability.shape == (8, 8)
    assert mask.probability[0, 0] == pytest.approx(1 / (1 + math.exp(-2)))  # the corner keeps its value
    assert mask.probability[7, 7] == pytest.approx(0.5)
    two = np.zeros((1, 2, 2, 2), np.float32)
    two[..., 1] = math.log(3.0)  # softmax of (0, ln 3): 3 / 4 for the second channel
    softmax = CalculatorRunner("calculator: TensorsToSegmentationCalculator\noptions: {activation: softmax}")
    mask = softmax.run({"TENSORS": [Tensors((two,))], "IMAGE": [FRAME]})["MASK"][0].payload
    assert np.allclose(mask.probability, 0.75)


def test_tensors_to_segmentation_through_a_roi_matrix():
    # The model saw the frame's left half (x 0..0.5): MATRIX maps tensor-relative x to x / 2 in the frame.
    matrix = np.array([[0.5, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0.5, 0], [0, 0, 0, 1]], np.float32)
    ones = np.ones((1, 4, 4, 1), np.float32)
    runner = CalculatorRunner("calculator: TensorsToSegmentationCalculator")
    mask = runner.run({"TENSORS": [Tensors((ones,))], "IMAGE": [FRAME], "MATRIX": [matrix]})["MASK"][0].payload
    # Frame columns 0-3 are the tensor's 4 columns, rows 0-7 its rows at half steps (pixel indices map straight
    # through, as in MediaPipe's warp); the rest is outside the region (0). The last row is half past the
    # tensor's last row: half zero border.
    assert np.allclose(mask.probability[:7, :4], 1.0) and np.allclose(mask.probability[:, 4:], 0.0)
    assert np.allclose(mask.probability[7, :4], 0.5)


def test_segmentation_smoothing_holds_unsure_pixels_and_restarts():
    previous = np.array([[1.0, 1.0]], np.float32)
    current = np.array([[0.5, 0.0]], np.float32)
    # p = 0.5 is fully uncertain: it moves by the whole ratio towards the previous; p = 0 is certain: it stays.
    assert smooth(previous, current, 0.7) == pytest.approx(np.array([[0.5 + 0.5 * 0.7, 0.0]]), abs=1e-4)
    runner = CalculatorRunner("calculator: SegmentationSmoothingCalculator\noptions: {combine_with_previous_ratio: 0.7}")
    masks = [(0, Mask(previous)), (1, Mask(current)), (3, Mask(current))]
    out = runner.run({"MASK": masks, "IMAGE": [Packet(t, FRAME) for t in range(4)]})
    values = {p.timestamp: p.payload.probability[0, 0] for p in out["MASK"]}
    assert values[0] == 1.0 and values[1] == pytest.approx(0.85)
    assert values[3] == pytest.approx(0.5)  # nothing at 2: no previous mask to lean on
