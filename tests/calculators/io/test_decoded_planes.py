"""The file source hands on the decoder's yuv420p planes (no RGB conversion), and RGB where they would mislead."""
import numpy as np
import pytest

from calculators.io.decoded_planes import i420_of
from media import astronaut_pan_clip, require

av = pytest.importorskip("av")


def test_file_frames_keep_the_decoders_planes(run_graph, source_yaml):
    clip = require(astronaut_pan_clip)
    packets, problems = run_graph(source_yaml(clip, max_frames=3))
    assert problems == [] and len(packets) == 3
    with av.open(str(clip)) as container:
        pictures = [p.to_ndarray() for _, p in zip(range(3), container.decode(video=0))]
    for packet, planes in zip(packets, pictures):
        frame = packet.payload
        assert frame.yuv420p is not None and np.array_equal(frame.yuv420p, planes)  # the decoder's bytes
        assert frame.image.shape == (frame.height, frame.width, 3)  # and RGB on demand


def _picture(fmt: str = "yuv420p", colorspace: int = 6, color_range: int = 1, size=(8, 6)):
    picture = av.VideoFrame(size[0], size[1], fmt)
    picture.colorspace, picture.color_range = colorspace, color_range
    return picture


def test_only_bt601_limited_even_yuv420p_is_kept_as_planes():
    assert i420_of(_picture()).shape == (9, 8)
    assert i420_of(_picture(colorspace=2, color_range=0)).shape == (9, 8)  # untagged: swscale assumes BT.601
    assert i420_of(_picture(colorspace=1)) is None  # BT.709: PyAV converts with its own coefficients
    assert i420_of(_picture(color_range=2)) is None  # full range (yuvj)
    assert i420_of(_picture("nv12")) is None
    assert i420_of(_picture(size=(7, 6))) is None  # odd width: OpenCV's I420 needs even sizes
