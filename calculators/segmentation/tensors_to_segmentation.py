from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Frame, Mask, Tensors

from calculators.landmarks.activation import sigmoid

_ACTIVATIONS = ("none", "sigmoid", "softmax")


@register_calculator
class TensorsToSegmentationCalculator(Calculator):
    """A segmentation model's output as a foreground-probability mask of the frame's size (MediaPipe's
    TensorsToSegmentationCalculator, CPU path). The tensor (H x W x C, C = 1 or 2) goes through `activation`:
    none (channel 0 as it is), sigmoid (of channel 0) or softmax (over the two channels, keeping
    `output_layer_index`). The small mask is then resized bilinearly to the IMAGE's size, for a model run on the
    whole frame (selfie segmentation); or, with MATRIX (ImageToTensorCalculator's, for a model run on a region
    of interest, as pose), warped into the frame through it, zero outside the region.

    Ports:
        TENSORS (Tensors), IMAGE (Frame: gives the output size), MATRIX (4x4 array, optional)
        -> MASK (Mask, the frame's size)

    Example node:
        - calculator: TensorsToSegmentationCalculator
          inputs: {TENSORS: segmentation_tensors, IMAGE: input_video}
          outputs: {MASK: segmentation_mask}
          options: {activation: none}
    """

    @dataclass(frozen=True)
    class Options:
        activation: str = "none"
        output_layer_index: int = 1
        tensor_index: int = 0

        def __post_init__(self):
            if self.activation not in _ACTIVATIONS:
                raise ValueError(f"activation must be one of {', '.join(_ACTIVATIONS)}, got {self.activation!r}")
            if self.output_layer_index not in (0, 1):
                raise ValueError(f"output_layer_index must be 0 or 1, got {self.output_layer_index}")

    TENSORS = Input[Tensors]("TENSORS")
    IMAGE = Input[Frame]("IMAGE")
    MATRIX = Input[np.ndarray]("MATRIX").optional()
    MASK = Output[Mask]("MASK")

    def open(self, ctx):
        import cv2

        self._cv2 = cv2

    def process(self, ctx):
        tensors, frame = ctx.get(self.TENSORS), ctx.get(self.IMAGE)
        if tensors is None or frame is None:
            return
        small = self.activate(self._hwc(tensors))
        cv2 = self._cv2
        if ctx.has(self.MATRIX):
            affine = _tensor_to_frame_affine(ctx.get(self.MATRIX), small.shape[1], small.shape[0], frame)
            mask = cv2.warpAffine(small, affine, (frame.width, frame.height), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        else:
            mask = cv2.resize(small, (frame.width, frame.height), interpolation=cv2.INTER_LINEAR)
        ctx.send(self.MASK, Mask(np.ascontiguousarray(mask, np.float32)))

    def _hwc(self, tensors: Tensors) -> np.ndarray:
        i = self.options.tensor_index
        if i >= len(tensors):
            raise ValueError(f"TENSORS: tensor_index {i}, but the packet holds {len(tensors)} tensors")
        t = np.asarray(tensors[i], np.float32)
        if t.ndim == 4:
            t = t[0]
        if t.ndim == 2:
            t = t[:, :, None]
        if t.ndim != 3 or t.shape[2] not in (1, 2):
            raise ValueError(f"TENSORS: expected a [1,] H x W x 1 or 2 tensor, got shape {np.shape(tensors[i])}")
        return t

    def activate(self, hwc: np.ndarray) -> np.ndarray:
        o = self.options
        if o.activation == "sigmoid":
            return sigmoid(hwc[:, :, 0])
        if o.activation == "softmax":
            if hwc.shape[2] != 2:
                raise ValueError(f"activation softmax needs 2 channels, got {hwc.shape[2]}")
            hi = hwc.max(axis=2)
            return (np.exp(hwc[:, :, o.output_layer_index] - hi) / (1.0 + np.exp(hwc.min(axis=2) - hi))).astype(
                np.float32)
        return np.ascontiguousarray(hwc[:, :, 0])


def _tensor_to_frame_affine(matrix: np.ndarray, tensor_w: int, tensor_h: int, frame: Frame) -> np.ndarray:
    """The 2x3 pixel affine taking mask pixels (tensor grid) to frame pixels, from the relative 4x4 MATRIX."""
    m = np.asarray(matrix, np.float64).reshape(4, 4)
    to_relative = np.diag([1.0 / tensor_w, 1.0 / tensor_h, 1.0])
    to_pixels = np.diag([frame.width, frame.height, 1.0])
    relative = np.array([[m[0, 0], m[0, 1], m[0, 3]], [m[1, 0], m[1, 1], m[1, 3]], [0.0, 0.0, 1.0]])
    # No half-pixel shift between the grids: MediaPipe's WarpAffineCalculator runs in its "OpenCV compatibility"
    # mode, which maps pixel indices straight through the scaled matrix.
    return (to_pixels @ relative @ to_relative)[:2]
