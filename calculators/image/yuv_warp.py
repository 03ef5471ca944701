"""A perspective warp of a frame's yuv420p planes onto a small output, converted to RGB there only (with the
frame's coefficients: BT.601 or BT.709, limited or full range).

A detector's letterbox or a landmark model's rotated crop samples a 128x128 or 256x256 grid out of the frame;
warping the planes and converting that grid costs a fraction of converting the whole 720p frame to RGB first.
The result is what warping `frame.image` gives, within a level or two: the warp is linear, so warping then
converting equals converting then warping except for rounding, and for chroma, which is sampled bilinearly here
where OpenCV's full-frame conversion repeats each chroma sample over its 2x2 pixels.
"""
from __future__ import annotations

import functools

import numpy as np

from pipelines.yuv import BT601, YuvEncoding

# A chroma sample stands for 2x2 luma pixels, its centre at luma (2x + 0.5, 2y + 0.5).
_CHROMA_TO_LUMA = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]])
_NEUTRAL_UV = 128  # U and V of the zero border (any grey); its Y is the encoding's black


@functools.lru_cache(maxsize=None)
def yuv_to_rgb_matrix(encoding: YuvEncoding = BT601) -> np.ndarray:
    """The 3x4 affine map (Y, U, V, 1) -> (R, G, B) of `encoding`, for `cv2.transform`."""
    if encoding == BT601:
        # OpenCV's COLOR_YUV2RGB_I420 (its fixed-point constants / 2**20), so this crop has the colours
        # `frame.image` has: kept exactly, the tensors of BT.601 clips do not change.
        cy, cvr, cvg, cug, cub = (1220542 / 2**20, 1673527 / 2**20, -852492 / 2**20, -409993 / 2**20,
                                  2116026 / 2**20)
    else:
        # The standard's equations, as swscale (which makes `frame.image` of such frames) applies them.
        kr, kb = encoding.kr_kb
        kg = 1.0 - kr - kb
        cy, cc = (1.0, 1.0) if encoding.full_range else (255 / 219, 255 / 224)
        cvr, cub = 2 * (1 - kr) * cc, 2 * (1 - kb) * cc
        cvg, cug = -cvr * kr / kg, -cub * kb / kg
    matrix = np.array([[cy, 0.0, cvr], [cy, cug, cvg], [cy, cub, 0.0]])
    offsets = -(matrix @ [float(encoding.black), 128.0, 128.0])
    matrix = np.hstack([matrix, offsets[:, None]])  # 3x4: offsets last
    matrix.flags.writeable = False  # shared by every call (cached)
    return matrix


def warp_yuv420p_to_rgb(cv2, planes, matrix: np.ndarray, size: tuple[int, int], border: int,
                        encoding: YuvEncoding = BT601) -> np.ndarray:
    """`cv2.warpPerspective(frame.image, matrix, size)` (bilinear) computed from the planes in `encoding` (the
    frame's `yuv420p_encoding`): HxWx3 uint8 RGB. A constant border is black."""
    y, u, v = planes
    flags = cv2.INTER_LINEAR
    luma = cv2.warpPerspective(y, matrix, size, flags=flags, borderMode=border, borderValue=encoding.black)
    chroma_matrix = matrix @ _CHROMA_TO_LUMA
    # U and V one at a time: OpenCV's single-channel warp is several times faster than its 2-channel one.
    u, v = (cv2.warpPerspective(c, chroma_matrix, size, flags=flags, borderMode=border, borderValue=_NEUTRAL_UV)
            for c in (u, v))
    # One affine map per pixel (Y, U, V -> R, G, B), rounded and saturated to uint8 by OpenCV: a few microseconds
    # on a 128x128 grid, where the same arithmetic in numpy costs ten times more.
    return cv2.transform(cv2.merge((luma, u, v)), yuv_to_rgb_matrix(encoding))
