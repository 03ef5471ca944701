"""The decoder's picture as a Frame can hold it, with no RGB conversion, when converting later gives its colours.

`Frame` holds yuv420p planes in BT.601 or BT.709, limited or full range (`pipelines.yuv.YuvEncoding`), and
makes their RGB by those coefficients (BT.601 limited with OpenCV, within 1-2 levels of swscale; the others with
swscale itself, as PyAV converted such pictures before). A picture tagged otherwise (BT.2020, SMPTE 240M, ...) or
of another layout (nv12, 10-bit, 4:2:2) is returned as None: the source converts it to RGB with PyAV as before,
which honours the tags.
"""
from __future__ import annotations

import importlib.util
from typing import NamedTuple

import numpy as np

from pipelines.yuv import YuvEncoding


def _have_opencv() -> bool:
    try:
        return importlib.util.find_spec("cv2") is not None
    except ImportError:  # an import hook that refuses it
        return False


# Without OpenCV a frame could not make its RGB from planes: such an install keeps converting in the source.
_CAN_CONVERT = _have_opencv()

# FFmpeg's AVColorSpace values whose coefficients swscale uses: unspecified (swscale's default is BT.601),
# BT470BG and SMPTE170M (both BT.601), BT709.
_MATRIX = {2: "bt601", 5: "bt601", 6: "bt601", 1: "bt709"}
_RANGES = {0: False, 1: False, 2: True}  # AVColorRange: unspecified (taken as limited), MPEG, JPEG -> full range
# yuvj420p is yuv420p in full range, whatever the range tag says (swscale treats it so).
_FORMATS = ("yuv420p", "yuvj420p")


class DecodedPlanes(NamedTuple):
    """A picture's planes as `Frame(i420=..., encoding=...)` takes them."""

    i420: np.ndarray  # one contiguous I420 buffer (H * 3 / 2, W)
    encoding: YuvEncoding


def i420_of(picture) -> DecodedPlanes | None:
    """A PyAV VideoFrame's planes as one contiguous I420 buffer (H * 3 / 2, W) and their colour encoding, or None if
    a Frame can't hold them (another layout, an odd size, a matrix other than BT.601 or BT.709, no OpenCV)."""
    fmt = picture.format.name
    if not _CAN_CONVERT or fmt not in _FORMATS or picture.width % 2 or picture.height % 2:
        return None
    matrix, full = _MATRIX.get(picture.colorspace), _RANGES.get(picture.color_range)
    if matrix is None or full is None:
        return None
    # One copy out of FFmpeg's padded lines, already I420 (yuvj420p's planes are laid out as yuv420p's).
    return DecodedPlanes(picture.to_ndarray(), YuvEncoding(matrix, full or fmt == "yuvj420p"))
