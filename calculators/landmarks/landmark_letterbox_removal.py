from __future__ import annotations

import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Landmarks, LetterboxPadding


def remove_letterbox(landmarks: Landmarks, padding: LetterboxPadding) -> Landmarks:
    """`landmarks` relative to the padded model input -> relative to the region inside the padding."""
    if not landmarks.relative:
        raise ValueError("LANDMARKS: expected relative landmarks (NORM_LANDMARKS of TensorsToLandmarksCalculator)")
    sx = np.float32(1.0 - padding.left - padding.right)
    sy = np.float32(1.0 - padding.top - padding.bottom)
    if sx <= 0 or sy <= 0:
        raise ValueError(f"LETTERBOX_PADDING {padding} leaves no image (left + right and top + bottom must be < 1)")
    offset = np.array([padding.left, padding.top, 0.0], np.float32)
    scale = np.array([sx, sy, sx], np.float32)  # z is scaled like x
    return Landmarks((landmarks.xyz - offset) / scale, landmarks.visibility, landmarks.presence)


@register_calculator
class LandmarkLetterboxRemovalCalculator(Calculator):
    """Maps landmarks on a letterboxed model input back to the region that was letterboxed (MediaPipe's
    LandmarkLetterboxRemovalCalculator): x' = (x - left) / (1 - left - right), y' likewise with top and bottom,
    z' = z / (1 - left - right). Visibility and presence are kept.

    Ports:
        LANDMARKS (Landmarks, relative to the model input), LETTERBOX_PADDING (LetterboxPadding)
        -> LANDMARKS (Landmarks, relative to the region of interest)

    Example node:
        - calculator: LandmarkLetterboxRemovalCalculator
          inputs: {LANDMARKS: hand_landmarks_on_tensor, LETTERBOX_PADDING: hand_letterbox_padding}
          outputs: {LANDMARKS: hand_landmarks_in_roi}
    """

    LANDMARKS = Input[Landmarks]("LANDMARKS")
    LETTERBOX_PADDING = Input[LetterboxPadding]("LETTERBOX_PADDING")
    OUT = Output[Landmarks]("LANDMARKS")

    def process(self, ctx):
        if not ctx.has(self.LANDMARKS):
            return
        padding = ctx.get(self.LETTERBOX_PADDING)
        if padding is None:
            raise ValueError(f"no LETTERBOX_PADDING at timestamp {ctx.timestamp}: it must come with every LANDMARKS "
                             "packet (from the ImageToTensorCalculator that made the model input)")
        ctx.send(self.OUT, remove_letterbox(ctx.get(self.LANDMARKS), padding))
