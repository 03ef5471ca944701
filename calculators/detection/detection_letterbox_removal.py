import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Detections, LetterboxPadding

_F32 = np.float32


@register_calculator
class DetectionLetterboxRemovalCalculator(Calculator):
    """Maps detections on a letterboxed model input back to the original image (MediaPipe's
    DetectionLetterboxRemovalCalculator).

    With padding (left, top, right, bottom) as fractions of the padded image, a relative x becomes
    `(x - left) / (1 - left - right)` and a relative y `(y - top) / (1 - top - bottom)`; box sizes are divided
    by the same factors. Boxes and keypoints are both mapped; scores, labels and track ids are kept. Nothing
    is sent at a timestamp without DETECTIONS.

    Ports:
        DETECTIONS (Detections, relative to the letterboxed input), LETTERBOX_PADDING (LetterboxPadding)
        -> DETECTIONS (Detections, relative to the original image)

    Example node:
        - calculator: DetectionLetterboxRemovalCalculator
          inputs: {DETECTIONS: face_detections_on_tensor, LETTERBOX_PADDING: letterbox_padding}
          outputs: {DETECTIONS: face_detections}
    """

    DETECTIONS = Input[Detections]("DETECTIONS")
    LETTERBOX_PADDING = Input[LetterboxPadding]("LETTERBOX_PADDING")
    OUT = Output[Detections]("DETECTIONS")

    def process(self, ctx):
        if not ctx.has(self.DETECTIONS):
            return
        padding = ctx.get(self.LETTERBOX_PADDING)
        if padding is None:
            raise ValueError(f"no LETTERBOX_PADDING at timestamp {ctx.timestamp}: it must come with every DETECTIONS "
                             "packet (from the ImageToTensorCalculator that made the model input)")
        ctx.send(self.OUT, remove_letterbox(ctx.get(self.DETECTIONS), padding))


def remove_letterbox(dets: Detections, padding: LetterboxPadding) -> Detections:
    """`dets` relative to the padded image -> relative to the image inside the padding."""
    if not dets.relative:
        raise ValueError("DETECTIONS: expected relative coordinates (fractions of the model input), got pixels")
    left, top = _F32(padding.left), _F32(padding.top)
    sx = _F32(1) - (left + _F32(padding.right))
    sy = _F32(1) - (top + _F32(padding.bottom))
    if sx <= 0 or sy <= 0:
        raise ValueError(f"LETTERBOX_PADDING {padding} leaves no image (left + right and top + bottom must be < 1)")
    xyxy = np.asarray(dets.xyxy, _F32)
    offset = np.array([left, top, left, top], _F32)
    scale = np.array([sx, sy, sx, sy], _F32)
    keypoints = np.asarray(dets.keypoints, _F32)
    if keypoints.size:
        keypoints = (keypoints - offset[:2]) / scale[:2]
    return Detections((xyxy - offset) / scale, dets.scores, keypoints, dets.labels, dets.track_ids, relative=True)
