"""The decoder's picture as a Frame can hold it, with no RGB conversion, when converting later gives its colours.

`Frame` holds yuv420p planes only as BT.601 limited range (what OpenCV's I420 conversion assumes, and what
swscale assumes for an untagged picture), so a picture tagged otherwise (BT.709, full range) or of another
layout is returned as None: the source converts it to RGB with PyAV as before, which honours the tags.
"""
from __future__ import annotations

import importlib.util

import numpy as np


def _have_opencv() -> bool:
    try:
        return importlib.util.find_spec("cv2") is not None
    except ImportError:  # an import hook that refuses it
        return False


# Without OpenCV a frame could not make its RGB from planes: such an install keeps converting in the source.
_CAN_CONVERT = _have_opencv()

# FFmpeg's AVColorSpace values that swscale converts with BT.601's coefficients: unspecified, BT470BG, SMPTE170M.
_BT601 = {2, 5, 6}
_LIMITED = {0, 1}  # AVColorRange: unspecified, MPEG (limited)


def i420_of(picture) -> np.ndarray | None:
    """A PyAV VideoFrame's planes as one contiguous I420 buffer (H * 3 / 2, W), or None if a Frame can't hold them."""
    if not _CAN_CONVERT or picture.format.name != "yuv420p" or picture.width % 2 or picture.height % 2:
        return None
    if picture.colorspace not in _BT601 or picture.color_range not in _LIMITED:
        return None
    return picture.to_ndarray()  # one copy out of FFmpeg's padded lines, already I420
