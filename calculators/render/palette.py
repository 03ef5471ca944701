"""Distinct colours per track id, the same in boxes, labels and trails."""
from __future__ import annotations

# Okabe-Ito-like set, bright enough on video; RGB.
_PALETTE = ((0, 255, 0), (255, 170, 0), (0, 200, 255), (255, 80, 200), (255, 255, 0), (120, 140, 255),
            (0, 255, 170), (255, 90, 60), (190, 120, 255), (160, 255, 60))


def track_color(track_id: int) -> tuple[int, int, int]:
    return _PALETTE[int(track_id) % len(_PALETTE)]
