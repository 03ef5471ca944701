"""A perspective warp of a frame's yuv420p planes onto a small output, converted to RGB there only.

A detector's letterbox or a landmark model's rotated crop samples a 128x128 or 256x256 grid out of the frame;
warping the planes and converting that grid costs a fraction of converting the whole 720p frame to RGB first.
The result is what warping `frame.image` gives, within a level or two: the warp is linear, so warping then
converting equals converting then warping except for rounding, and for chroma, which is sampled bilinearly here
where OpenCV's full-frame conversion repeats each chroma sample over its 2x2 pixels.
"""
from __future__ import annotations

import numpy as np

# BT.601 limited range, the coefficients of OpenCV's COLOR_YUV2RGB_I420 (its fixed-point constants / 2**20), so
# this crop has the colours `frame.image` has.
_CY, _CVR, _CVG, _CUG, _CUB = 1220542 / 2**20, 1673527 / 2**20, -852492 / 2**20, -409993 / 2**20, 2116026 / 2**20
# A chroma sample stands for 2x2 luma pixels, its centre at luma (2x + 0.5, 2y + 0.5).
_CHROMA_TO_LUMA = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]])
_BLACK_Y, _NEUTRAL_UV = 16, 128  # the zero border in YUV: RGB (0, 0, 0)
_YUV_TO_RGB = np.array([[_CY, 0.0, _CVR], [_CY, _CUG, _CVG], [_CY, _CUB, 0.0]])
_YUV_TO_RGB = np.hstack([_YUV_TO_RGB, -(_YUV_TO_RGB @ [16.0, 128.0, 128.0])[:, None]])  # 3x4: offsets last


def warp_yuv420p_to_rgb(cv2, planes, matrix: np.ndarray, size: tuple[int, int], border: int) -> np.ndarray:
    """`cv2.warpPerspective(frame.image, matrix, size)` (bilinear) computed from the planes: HxWx3 uint8 RGB."""
    y, u, v = planes
    flags = cv2.INTER_LINEAR
    luma = cv2.warpPerspective(y, matrix, size, flags=flags, borderMode=border, borderValue=_BLACK_Y)
    chroma_matrix = matrix @ _CHROMA_TO_LUMA
    # U and V one at a time: OpenCV's single-channel warp is several times faster than its 2-channel one.
    u, v = (cv2.warpPerspective(c, chroma_matrix, size, flags=flags, borderMode=border, borderValue=_NEUTRAL_UV)
            for c in (u, v))
    # One affine map per pixel (Y, U, V -> R, G, B), rounded and saturated to uint8 by OpenCV: a few microseconds
    # on a 128x128 grid, where the same arithmetic in numpy costs ten times more.
    return cv2.transform(cv2.merge((luma, u, v)), _YUV_TO_RGB)
