"""A constant-velocity Kalman filter for boxes, as in SORT and ByteTrack (numpy only).

The state is (cx, cy, a, h, vcx, vcy, va, vh): box centre, aspect ratio w/h, height, and their velocities
per step. Process and measurement noise are proportional to the box height (ByteTrack's weights), so the
filter works in any units: pixels, or relative coordinates rescaled so that x and y have the same unit
(the tracker calculator does that, since a relative width is not comparable with a relative height).
"""
from __future__ import annotations

import numpy as np

# Noise as a fraction of the box height, per step: ByteTrack's (and DeepSORT's) tuned values.
_STD_POSITION = 1.0 / 20
_STD_VELOCITY = 1.0 / 160
# The aspect ratio barely changes for a walking person or a face; its noise is absolute, not scaled.
_STD_ASPECT = 1e-2
_STD_ASPECT_VELOCITY = 1e-5
_STD_ASPECT_MEASUREMENT = 1e-1
_MIN_HEIGHT = 1e-6  # a shrinking box predicted for many steps must not flip over


def xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) corners to (N, 4) centre x, centre y, aspect w/h, height."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    w = boxes[:, 2] - boxes[:, 0]
    h = np.maximum(boxes[:, 3] - boxes[:, 1], _MIN_HEIGHT)
    return np.stack([boxes[:, 0] + w / 2, boxes[:, 1] + h / 2, w / h, h], axis=1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """(N, 4+) states (only the first four columns are read) to (N, 4) corners."""
    xyah = np.asarray(xyah, np.float64).reshape(len(xyah), -1)
    h = np.maximum(xyah[:, 3], _MIN_HEIGHT)
    w = xyah[:, 2] * h
    return np.stack([xyah[:, 0] - w / 2, xyah[:, 1] - h / 2, xyah[:, 0] + w / 2, xyah[:, 1] + h / 2], axis=1)


class KalmanBoxFilter:
    """Predicts and corrects box states. Stateless: means (8,) and covariances (8, 8) are passed in and out,
    so one filter serves every track and `predict` runs on all tracks at once."""

    def __init__(self, dt: float = 1.0):
        self.motion = np.eye(8)
        self.motion[:4, 4:] = dt * np.eye(4)
        self.observe = np.eye(4, 8)

    def initiate(self, xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A new track at measurement `xyah` (4,), velocity unknown (zero, with a wide variance)."""
        xyah = np.asarray(xyah, np.float64)
        h = xyah[3]
        mean = np.concatenate([xyah, np.zeros(4)])
        std = np.array([2 * _STD_POSITION * h, 2 * _STD_POSITION * h, _STD_ASPECT, 2 * _STD_POSITION * h,
                        10 * _STD_VELOCITY * h, 10 * _STD_VELOCITY * h, _STD_ASPECT_VELOCITY,
                        10 * _STD_VELOCITY * h])
        return mean, np.diag(std ** 2)

    def predict(self, means: np.ndarray, covs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step ahead for N tracks: means (N, 8), covariances (N, 8, 8)."""
        if not len(means):
            return means, covs
        h = means[:, 3]
        ones = np.ones_like(h)
        std = np.stack([_STD_POSITION * h, _STD_POSITION * h, _STD_ASPECT * ones, _STD_POSITION * h,
                        _STD_VELOCITY * h, _STD_VELOCITY * h, _STD_ASPECT_VELOCITY * ones, _STD_VELOCITY * h],
                       axis=1)
        noise = np.zeros_like(covs)
        idx = np.arange(8)
        noise[:, idx, idx] = std ** 2
        means = means @ self.motion.T
        means[:, 3] = np.maximum(means[:, 3], _MIN_HEIGHT)
        covs = self.motion @ covs @ self.motion.T + noise
        return means, covs

    def update(self, mean: np.ndarray, cov: np.ndarray, xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correct one track's state with measurement `xyah` (4,)."""
        h = mean[3]
        std = np.array([_STD_POSITION * h, _STD_POSITION * h, _STD_ASPECT_MEASUREMENT, _STD_POSITION * h])
        projected_cov = self.observe @ cov @ self.observe.T + np.diag(std ** 2)
        # Kalman gain K = P H^T S^-1, solved rather than inverted (S is symmetric positive definite).
        gain = np.linalg.solve(projected_cov, (cov @ self.observe.T).T).T
        innovation = np.asarray(xyah, np.float64) - self.observe @ mean
        return mean + gain @ innovation, cov - gain @ projected_cov @ gain.T
