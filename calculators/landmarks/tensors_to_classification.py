from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Classification, Tensors

from .activation import sigmoid


@register_calculator
class TensorsToClassificationCalculator(Calculator):
    """Scores to labelled classes (MediaPipe's TensorsToClassificationCalculator), best first. With
    `binary_classification` the tensor holds one score s: class 0 gets s, class 1 gets 1 - s (the hand model's
    handedness, labels [Left, Right]). `top_k` keeps the best k (0: all), `min_score_threshold` drops lower ones,
    `apply_sigmoid` maps logits to 0..1 first. `labels` name the classes by index; unnamed ones get their index.

    Ports:
        TENSORS (Tensors) -> CLASSIFICATIONS (tuple of Classification, best first)

    Example node:
        - calculator: TensorsToClassificationCalculator
          inputs: {TENSORS: hand_landmark_tensors}
          outputs: {CLASSIFICATIONS: handedness}
          options: {tensor_index: 2, binary_classification: true, top_k: 1, labels: [Left, Right]}
    """

    @dataclass(frozen=True)
    class Options:
        labels: tuple[str, ...] = ()
        binary_classification: bool = False
        top_k: int = 0
        min_score_threshold: float = float("-inf")
        apply_sigmoid: bool = False
        tensor_index: int = 0

        def __post_init__(self):
            if self.top_k < 0:
                raise ValueError(f"top_k must be >= 0, got {self.top_k}")

    TENSORS = Input[Tensors]("TENSORS")
    CLASSIFICATIONS = Output[tuple]("CLASSIFICATIONS")

    def process(self, ctx):
        o = self.options
        tensors = ctx.get(self.TENSORS)
        if o.tensor_index >= len(tensors):
            raise ValueError(f"TENSORS: tensor_index {o.tensor_index}, but the packet holds {len(tensors)} tensors")
        scores = np.asarray(tensors[o.tensor_index], np.float32).reshape(-1)
        if o.apply_sigmoid:
            scores = sigmoid(scores)
        if o.binary_classification:
            if scores.size != 1:
                raise ValueError(f"binary_classification expects one score, got {scores.size}")
            scores = np.array([scores[0], 1.0 - scores[0]], np.float32)
        found = [Classification(self._label(i), float(s), i) for i, s in enumerate(scores.tolist())
                 if s >= o.min_score_threshold]
        found.sort(key=lambda c: -c.score)  # stable: equal scores keep index order
        ctx.send(self.CLASSIFICATIONS, tuple(found[: o.top_k] if o.top_k else found))

    def _label(self, index: int) -> str:
        labels = self.options.labels
        return labels[index] if index < len(labels) else str(index)
