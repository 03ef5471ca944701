from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Landmarks, Tensors

from .activation import sigmoid


def refine(landmarks: Landmarks, heatmap: np.ndarray, kernel_size: int, min_confidence: float,
           refine_presence: bool, refine_visibility: bool) -> Landmarks:
    """Each landmark moved to the confidence-weighted centre of the kernel_size x kernel_size heatmap window
    around it (confidences = sigmoid of the heatmap), if the window's best confidence reaches `min_confidence`."""
    hm_h, hm_w, channels = heatmap.shape
    if channels != len(landmarks):
        raise ValueError(f"TENSORS: the heatmap has {channels} layers for {len(landmarks)} landmarks")
    xyz = landmarks.xyz.copy()
    visibility = None if landmarks.visibility is None else landmarks.visibility.copy()
    presence = None if landmarks.presence is None else landmarks.presence.copy()
    offset = (kernel_size - 1) // 2
    for i in range(len(xyz)):
        col, row = int(xyz[i, 0] * hm_w), int(xyz[i, 1] * hm_h)  # truncation towards zero, as MediaPipe's int()
        if not (0 <= col < hm_w and 0 <= row < hm_h):
            continue
        r0, r1 = max(0, row - offset), min(hm_h, row + offset + 1)
        c0, c1 = max(0, col - offset), min(hm_w, col + offset + 1)
        window = sigmoid(heatmap[r0:r1, c0:c1, i]).astype(np.float64)
        total = float(window.sum())
        best = float(window.max())
        if total <= 0:
            continue
        if best >= min_confidence:
            rows, cols = np.mgrid[r0:r1, c0:c1]
            # Weighted by integer cell indices (no half-cell offset), as MediaPipe computes it.
            xyz[i, 0] = float((cols * window).sum()) / hm_w / total
            xyz[i, 1] = float((rows * window).sum()) / hm_h / total
        if refine_presence and presence is not None:
            presence[i] = min(presence[i], best)
        if refine_visibility and visibility is not None:
            visibility[i] = min(visibility[i], best)
    return replace(landmarks, xyz=xyz, visibility=visibility, presence=presence)


@register_calculator
class RefineLandmarksFromHeatmapCalculator(Calculator):
    """Sharpens landmark positions with the model's heatmap (MediaPipe's RefineLandmarksFromHeatmapCalculator, as
    the pose landmark graph uses it with `kernel_size: 7`): each landmark moves to the confidence-weighted centre
    of its heatmap layer in a window around it, when the window's peak confidence is at least
    `min_confidence_to_refine`. Optionally caps presence or visibility by that peak. Landmarks are relative to the
    model input (before letterbox removal); the heatmap is H x W x N, one layer per landmark.

    Ports:
        NORM_LANDMARKS (Landmarks, relative to the model input), TENSORS (Tensors) -> NORM_LANDMARKS (Landmarks)

    Example node:
        - calculator: RefineLandmarksFromHeatmapCalculator
          inputs: {NORM_LANDMARKS: raw_pose_landmarks, TENSORS: present_pose_tensors}
          outputs: {NORM_LANDMARKS: refined_pose_landmarks}
          options: {kernel_size: 7, tensor_index: 3}
    """

    @dataclass(frozen=True)
    class Options:
        kernel_size: int = 9
        min_confidence_to_refine: float = 0.5
        refine_presence: bool = False
        refine_visibility: bool = False
        tensor_index: int = 0

        def __post_init__(self):
            if self.kernel_size < 1:
                raise ValueError(f"kernel_size must be >= 1, got {self.kernel_size}")

    NORM_LANDMARKS = Input[Landmarks]("NORM_LANDMARKS")
    TENSORS = Input[Tensors]("TENSORS")
    OUT = Output[Landmarks]("NORM_LANDMARKS")

    def process(self, ctx):
        landmarks, tensors = ctx.get(self.NORM_LANDMARKS), ctx.get(self.TENSORS)
        if landmarks is None or tensors is None:
            return
        o = self.options
        if o.tensor_index >= len(tensors):
            raise ValueError(f"TENSORS: tensor_index {o.tensor_index}, but the packet holds {len(tensors)} tensors")
        heatmap = np.asarray(tensors[o.tensor_index], np.float32)
        if heatmap.ndim == 4:
            heatmap = heatmap[0]
        if heatmap.ndim != 3:
            raise ValueError(f"TENSORS: expected a [1,] H x W x N heatmap, got shape {np.shape(tensors[o.tensor_index])}")
        ctx.send(self.OUT, refine(landmarks, heatmap, o.kernel_size, o.min_confidence_to_refine, o.refine_presence,
                                  o.refine_visibility))
