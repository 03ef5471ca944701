from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Landmarks, Tensors

from .activation import sigmoid

_ACTIVATIONS = ("none", "sigmoid")


def _activate(kind: str, values: np.ndarray) -> np.ndarray:
    if kind == "sigmoid":
        return sigmoid(values)
    return values.astype(np.float32)


@register_calculator
class TensorsToLandmarksCalculator(Calculator):
    """Decodes a landmark model's output (MediaPipe's TensorsToLandmarksCalculator). Tensor `tensor_index` holds
    `num_landmarks` rows of D values: x, y in the model input's pixels, then z, visibility, presence as far as
    D goes (visibility and presence through `visibility_activation` / `presence_activation`: none or sigmoid).

    NORM_LANDMARKS divides x by `input_image_width`, y by `input_image_height` and z by the width and by
    `normalize_z` (z scaled like x): relative to the model input, before letterbox removal and projection.
    LANDMARKS keeps the raw values (relative=False; `world: true` marks them as metres, for world landmark
    models). `flip_horizontally` / `flip_vertically` mirror x / y inside the input.

    Ports:
        TENSORS (Tensors) -> NORM_LANDMARKS (Landmarks, relative to the model input), LANDMARKS (Landmarks, raw)

    Example node:
        - calculator: TensorsToLandmarksCalculator
          inputs: {TENSORS: hand_landmark_tensors}
          outputs: {NORM_LANDMARKS: hand_landmarks_on_tensor}
          options: {num_landmarks: 21, input_image_width: 224, input_image_height: 224, normalize_z: 0.4}
    """

    @dataclass(frozen=True)
    class Options:
        num_landmarks: int
        input_image_width: int = 0  # needed for NORM_LANDMARKS and horizontal flips
        input_image_height: int = 0
        normalize_z: float = 1.0
        flip_horizontally: bool = False
        flip_vertically: bool = False
        visibility_activation: str = "none"
        presence_activation: str = "none"
        tensor_index: int = 0
        world: bool = False

        def __post_init__(self):
            if self.num_landmarks < 1:
                raise ValueError(f"num_landmarks must be >= 1, got {self.num_landmarks}")
            for name in ("visibility_activation", "presence_activation"):
                if getattr(self, name) not in _ACTIVATIONS:
                    raise ValueError(f"{name} must be one of {', '.join(_ACTIVATIONS)}, got {getattr(self, name)!r}")
            if self.normalize_z == 0:
                raise ValueError("normalize_z must not be 0")

    TENSORS = Input[Tensors]("TENSORS")
    NORM_LANDMARKS = Output[Landmarks]("NORM_LANDMARKS")
    LANDMARKS = Output[Landmarks]("LANDMARKS")

    def process(self, ctx):
        o = self.options
        tensors = ctx.get(self.TENSORS)
        if o.tensor_index >= len(tensors):
            raise ValueError(f"TENSORS: tensor_index {o.tensor_index}, but the packet holds {len(tensors)} tensors")
        flat = np.asarray(tensors[o.tensor_index], np.float32).reshape(-1)
        dims = flat.size // o.num_landmarks
        if dims < 1:
            raise ValueError(f"TENSORS: {flat.size} values cannot hold {o.num_landmarks} landmarks")
        raw = flat[: dims * o.num_landmarks].reshape(o.num_landmarks, dims)
        xyz = np.zeros((o.num_landmarks, 3), np.float32)
        xyz[:, : min(dims, 3)] = raw[:, :3]
        if o.flip_horizontally:
            xyz[:, 0] = o.input_image_width - xyz[:, 0]
        if o.flip_vertically and dims > 1:
            xyz[:, 1] = o.input_image_height - xyz[:, 1]
        visibility = _activate(o.visibility_activation, raw[:, 3]) if dims > 3 else None
        presence = _activate(o.presence_activation, raw[:, 4]) if dims > 4 else None
        ctx.send(self.LANDMARKS, Landmarks(xyz, visibility, presence, relative=False, world=o.world))
        if o.input_image_width > 0 and o.input_image_height > 0:
            w, h = np.float32(o.input_image_width), np.float32(o.input_image_height)
            norm = xyz / np.array([w, h, w * np.float32(o.normalize_z)], np.float32)
            ctx.send(self.NORM_LANDMARKS, Landmarks(norm, visibility, presence))
