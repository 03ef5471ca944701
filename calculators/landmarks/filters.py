"""The filters MediaPipe smooths landmarks with, on plain floats: a low-pass (exponential) filter, the one-euro
filter (Casiez et al.: a low-pass whose cutoff rises with speed) and MediaPipe's relative velocity filter.
Timestamps are integer microseconds; each filter instance follows one scalar (one coordinate of one landmark)."""
from __future__ import annotations

import math
from collections import deque


class LowPassFilter:
    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha
        self.initialized = False
        self.raw = 0.0
        self.value = 0.0

    def apply(self, value: float, alpha: float | None = None) -> float:
        if alpha is not None and 0.0 <= alpha <= 1.0:  # MediaPipe ignores (and logs) an alpha out of range
            self.alpha = alpha
        result = self.alpha * value + (1.0 - self.alpha) * self.value if self.initialized else value
        self.initialized = True
        self.raw, self.value = value, result
        return result


class OneEuroFilter:
    """MediaPipe's OneEuroFilter: `frequency` (Hz) is only the first guess, the time between samples decides."""

    def __init__(self, frequency: float, min_cutoff: float, beta: float, derivate_cutoff: float):
        self.frequency = frequency
        self.min_cutoff, self.beta, self.derivate_cutoff = min_cutoff, beta, derivate_cutoff
        self.x = LowPassFilter(self._alpha(min_cutoff))
        self.dx = LowPassFilter(self._alpha(derivate_cutoff))
        self.last_ns = -1  # MediaPipe's "uninitialized"

    def _alpha(self, cutoff: float) -> float:
        te = 1.0 / self.frequency
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / te)

    def apply(self, timestamp_us: int, value: float, value_scale: float = 1.0) -> float:
        ns = timestamp_us * 1000
        if self.last_ns >= ns:
            return value  # not after the last sample: passed through, as MediaPipe does
        if self.last_ns != 0 and ns != 0:  # MediaPipe's rule, quirks included (a sample at 0 keeps the guess)
            self.frequency = 1.0 / ((ns - self.last_ns) * 1e-9)
        self.last_ns = ns
        dvalue = (value - self.x.raw) * value_scale * self.frequency if self.x.initialized else 0.0
        edvalue = self.dx.apply(dvalue, self._alpha(self.derivate_cutoff))
        cutoff = self.min_cutoff + self.beta * abs(edvalue)
        return self.x.apply(value, self._alpha(cutoff))


class RelativeVelocityFilter:
    """MediaPipe's RelativeVelocityFilter (legacy distance mode): the faster the (scaled) value moves over the
    last `window_size` samples, the closer alpha gets to 1 (follow), the slower, to 0 (hold)."""

    _ASSUMED_MAX_NS = 1_000_000_000 // 30

    def __init__(self, window_size: int, velocity_scale: float):
        self.window_size, self.velocity_scale = window_size, velocity_scale
        self.window: deque[tuple[float, int]] = deque()  # (distance, duration ns), newest first
        self.last_value = 0.0
        self.last_scale = 1.0
        self.last_ns = -1
        self.low_pass = LowPassFilter(1.0)

    def apply(self, timestamp_us: int, value: float, value_scale: float = 1.0) -> float:
        ns = timestamp_us * 1000
        if self.last_ns >= ns:
            return value
        if self.last_ns == -1:
            alpha = 1.0
        else:
            distance = value * value_scale - self.last_value * self.last_scale
            duration = ns - self.last_ns
            total_distance, total_duration = distance, duration
            max_duration = (1 + len(self.window)) * self._ASSUMED_MAX_NS
            for d, t in self.window:
                if total_duration + t > max_duration:
                    break
                total_distance += d
                total_duration += t
            velocity = total_distance / (total_duration * 1e-9)
            alpha = 1.0 - 1.0 / (1.0 + self.velocity_scale * abs(velocity))
            self.window.appendleft((distance, duration))
            if len(self.window) > self.window_size:
                self.window.pop()
        self.last_value, self.last_scale, self.last_ns = value, value_scale, ns
        return self.low_pass.apply(value, alpha)
