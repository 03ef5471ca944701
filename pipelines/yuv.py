"""How the bytes of an I420 (yuv420p) buffer stand for colours, and conversions between such a buffer and RGB.

An encoding is a matrix (BT.601: SD video, JPEG, and what untagged video is taken to be; BT.709: HD video) and a
range (limited: Y 16..235, U and V 16..240, what video mostly uses; full: 0..255, "JPEG" range). A `Frame` holding
planes carries one, so whoever reads the planes (its own RGB conversion, a warp, the overlay, the writer) uses the
coefficients the decoder's picture was made with.

BT.601 limited range is converted with OpenCV (`COLOR_YUV2RGB_I420`, `COLOR_RGB2YUV_I420`): a tenth of swscale's
cost, and what frames made from planes have always used. The others go through swscale (PyAV), exactly as
`VideoFrame.to_ndarray(format="rgb24")` converts a decoder's picture so tagged: such frames come from PyAV's
decoder, so PyAV is there.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

MATRICES = ("bt601", "bt709")
# (Kr, Kb) of each matrix: Y = Kr R + (1 - Kr - Kb) G + Kb B.
_KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}
# FFmpeg's AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic of each (the same number in all three):
# SMPTE170M for BT.601 (what the writer has always tagged), BT709 for BT.709.
_AV_TAG = {"bt601": 6, "bt709": 1}
_SWS_NAME = {"bt601": "ITU601", "bt709": "ITU709"}  # swscale's names, as PyAV's reformat takes them


@dataclass(frozen=True)
class YuvEncoding:
    """The colour encoding of an I420 buffer: `matrix` "bt601" or "bt709", and `full_range`.

    `str()` gives the short name ("bt601", "bt709", "bt601-full", "bt709-full"); use the constants below.

    Example:
        Frame.from_yuv420p(planes, encoding=BT709)   # an HD camera's picture, limited range
    """

    matrix: str = "bt601"
    full_range: bool = False  # Y, U, V over 0..255 (AVCOL_RANGE_JPEG); else limited (AVCOL_RANGE_MPEG)

    def __post_init__(self):
        if self.matrix not in MATRICES:
            raise ValueError(f"YuvEncoding.matrix: expected one of {', '.join(MATRICES)}, got {self.matrix!r}")
        if not isinstance(self.full_range, bool):
            raise ValueError(f"YuvEncoding.full_range: expected True or False, got {self.full_range!r}")

    def __str__(self) -> str:
        return self.matrix + ("-full" if self.full_range else "")

    @property
    def kr_kb(self) -> tuple[float, float]:
        """The matrix's luma weights of red and blue (green's is what remains)."""
        return _KR_KB[self.matrix]

    @property
    def black(self) -> int:
        """Y of black (U and V of any grey are 128)."""
        return 0 if self.full_range else 16

    @property
    def av_colorspace(self) -> int:
        """FFmpeg's AVColorSpace for the matrix; the writer tags primaries and transfer with the same number."""
        return _AV_TAG[self.matrix]

    @property
    def av_color_range(self) -> int:
        """FFmpeg's AVColorRange: 1 (MPEG, limited) or 2 (JPEG, full)."""
        return 2 if self.full_range else 1


BT601 = YuvEncoding()
BT709 = YuvEncoding("bt709")
BT601_FULL = YuvEncoding("bt601", full_range=True)
BT709_FULL = YuvEncoding("bt709", full_range=True)


def i420_to_rgb(i420: np.ndarray, encoding: YuvEncoding = BT601) -> np.ndarray:
    """HxWx3 uint8 RGB of an I420 buffer (H * 3 / 2, W) in `encoding`."""
    if encoding == BT601:
        import cv2

        return cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
    import av

    # The same swscale conversion, with the same tags, that `to_ndarray(format="rgb24")` of the decoder's own
    # picture does: the same pixels (tests/pipelines/test_frame_yuv.py), at about the cost of converting there.
    picture = av.VideoFrame.from_ndarray(i420, format="yuv420p")
    picture.colorspace, picture.color_range = encoding.av_colorspace, encoding.av_color_range
    return picture.to_ndarray(format="rgb24")


def rgb_to_i420(rgb: np.ndarray, encoding: YuvEncoding = BT601) -> np.ndarray:
    """The I420 buffer (H * 3 / 2, W) of an HxWx3 uint8 RGB array (H and W even) in `encoding`."""
    if encoding == BT601:
        import cv2

        return cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    import av

    picture = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    return picture.reformat(format="yuv420p", dst_colorspace=_SWS_NAME[encoding.matrix],
                            dst_color_range=encoding.av_color_range).to_ndarray()


@functools.lru_cache(maxsize=256)
def yuv_of(color: tuple[int, int, int], encoding: YuvEncoding = BT601) -> tuple[int, int, int]:
    """Y, U, V of one RGB colour in `encoding`, as `rgb_to_i420` converts it: what a node painting that colour on a
    frame's planes writes into each plane."""
    i420 = rgb_to_i420(np.full((2, 2, 3), color, np.uint8), encoding)
    return int(i420[0, 0]), int(i420[2, 0]), int(i420[2, 1])
