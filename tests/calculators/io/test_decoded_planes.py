"""The file source hands on the decoder's yuv420p planes (no RGB conversion) with their colour encoding, and RGB
where a Frame cannot hold them."""
import numpy as np
import pytest

from calculators.io.decoded_planes import i420_of
from media import astronaut_pan_clip, require
from pipelines.yuv import BT601, BT601_FULL, BT709, BT709_FULL
from tiny_media import colour_blocks, make_tagged_clip

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
        assert frame.yuv420p_encoding == BT601  # an untagged SD clip
        assert frame.image.shape == (frame.height, frame.width, 3)  # and RGB on demand


def _picture(fmt: str = "yuv420p", colorspace: int = 6, color_range: int = 1, size=(8, 6)):
    picture = av.VideoFrame(size[0], size[1], fmt)
    picture.colorspace, picture.color_range = colorspace, color_range
    return picture


def test_even_yuv420p_in_bt601_or_bt709_any_range_is_kept_as_planes():
    # (format, AVColorSpace, AVColorRange) -> the encoding the planes are held in
    kept = {("yuv420p", 6, 1): BT601, ("yuv420p", 2, 0): BT601,  # untagged: swscale assumes BT.601 limited
            ("yuv420p", 5, 1): BT601, ("yuv420p", 1, 1): BT709, ("yuv420p", 1, 0): BT709,
            ("yuv420p", 1, 2): BT709_FULL, ("yuv420p", 6, 2): BT601_FULL,
            ("yuvj420p", 2, 0): BT601_FULL, ("yuvj420p", 1, 2): BT709_FULL}  # yuvj: full range, whatever the tag
    for (fmt, colorspace, color_range), encoding in kept.items():
        planes = i420_of(_picture(fmt, colorspace, color_range))
        assert planes is not None and planes.i420.shape == (9, 8), (fmt, colorspace, color_range)
        assert planes.encoding == encoding, (fmt, colorspace, color_range, planes.encoding)
    assert i420_of(_picture(colorspace=9)) is None  # BT.2020: PyAV converts it to RGB in the source, as before
    assert i420_of(_picture(colorspace=7)) is None  # SMPTE 240M
    assert i420_of(_picture("nv12")) is None
    assert i420_of(_picture(size=(7, 6))) is None  # odd width: OpenCV's I420 needs even sizes


@pytest.mark.parametrize("encoding", ["bt709", "bt709-full", "bt601-full"])
def test_tagged_clips_keep_their_planes_and_convert_as_pyav_did(run_graph, source_yaml, tmp_path, encoding):
    # HD camera / phone video (BT.709) and full range (yuvj420p) used to be converted to RGB in the source.
    clip = make_tagged_clip(tmp_path / f"{encoding}.mp4", encoding, colour_blocks(3))
    packets, problems = run_graph(source_yaml(clip))
    assert problems == [] and len(packets) == 3
    with av.open(str(clip)) as container:
        pictures = list(container.decode(video=0))
    for packet, picture in zip(packets, pictures, strict=True):
        frame = packet.payload
        assert frame.yuv420p is not None and frame.__dict__["_rgb"] is None  # planes, not RGB
        assert str(frame.yuv420p_encoding) == encoding and np.array_equal(frame.yuv420p, picture.to_ndarray())
        # What the source sent before (PyAV's rgb24 of the tagged picture), against the RGB made from the planes:
        # measured mean 0, max 0 (the same swscale conversion). Read as BT.601 limited it would be off by a mean
        # of 6.5-10 levels, up to 36-53, on these saturated blocks.
        diff = np.abs(frame.image.astype(np.int16) - picture.to_ndarray(format="rgb24"))
        assert diff.mean() < 0.1 and diff.max() <= 1, (diff.mean(), diff.max())
