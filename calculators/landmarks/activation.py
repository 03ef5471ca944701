"""The logistic function as MediaPipe's calculators apply it to model outputs, without overflow warnings."""
import numpy as np


def sigmoid(values) -> np.ndarray:
    """1 / (1 + e^-x) in float64, returned as float32; very negative logits give 0 quietly (exp overflows to inf)."""
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-np.asarray(values, np.float64)))).astype(np.float32)
