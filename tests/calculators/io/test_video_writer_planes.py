"""The writer encodes a frame that still holds the decoder's planes from them: no RGB, no conversion, the stream
tagged with their colour encoding."""
from pathlib import Path

import numpy as np
import pytest

from pipelines import Graph, load_graph
from pipelines.testing import CalculatorRunner
from pipelines.types import Frame
from pipelines.yuv import BT601, BT601_FULL, BT709, rgb_to_i420
from tiny_media import TAGS, colour_blocks, make_tagged_clip

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")


def _planes(count: int, width: int = 64, height: int = 48):
    rng = np.random.default_rng(7)
    return [rng.integers(16, 236, (height * 3 // 2, width), dtype=np.uint8) for _ in range(count)]


def _decoded_planes(path):
    with av.open(str(path)) as container:
        return [p.to_ndarray() for p in container.decode(video=0)]


def _tags(path) -> tuple[int, int, int, int]:
    """(colorspace, color_range, color_primaries, color_trc) of the file's video stream."""
    with av.open(str(path)) as container:
        cc = container.streams.video[0].codec_context
        return cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc


def test_planes_are_encoded_as_they_are(tmp_path):
    out = tmp_path / "planes.mp4"
    planes = _planes(5)
    frames = [Frame.from_yuv420p(p, index=i, fps=25.0) for i, p in enumerate(planes)]
    # crf 0 is lossless in x264: what comes back out of the file is exactly what went in.
    CalculatorRunner(f"calculator: VideoWriterCalculator\noptions: {{path: '{out}', crf: 0}}").run({"IMAGE": frames})
    assert all(np.array_equal(a, b) for a, b in zip(_decoded_planes(out), planes, strict=True))
    assert all(f.__dict__["_rgb"] is None for f in frames)  # no frame was converted to RGB on the way


def test_rgb_frames_are_converted_once_with_opencvs_i420(tmp_path):
    out = tmp_path / "rgb.mp4"
    rgb = [cv2.cvtColor(p, cv2.COLOR_YUV2RGB_I420) for p in _planes(3)]
    CalculatorRunner(f"calculator: VideoWriterCalculator\noptions: {{path: '{out}', crf: 0}}").run(
        {"IMAGE": [Frame(image, index=i, fps=25.0) for i, image in enumerate(rgb)]})
    expected = [cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420) for image in rgb]
    assert all(np.array_equal(a, b) for a, b in zip(_decoded_planes(out), expected, strict=True))
    assert _tags(out) == (6, 1, 6, 6)  # BT.601 (SMPTE 170M) limited range, as always


@pytest.mark.parametrize("encoding", ["bt709", "bt709-full", "bt601-full"])
def test_face_detect_writes_the_sources_encoding(tmp_path, encoding):
    # `run-graph face_detect --source CLIP --output out.mp4` on an HD camera's (BT.709) or a phone's (full range)
    # clip: every frame stays planes from decoder to encoder, and the file is tagged as the source was.
    pytest.importorskip("onnxruntime")
    root = Path(__file__).resolve().parents[3]
    with av.open(str(root / "assets" / "media" / "astronaut_pan.mp4")) as container:
        faces = [p.to_ndarray(format="rgb24") for _, p in zip(range(3), container.decode(video=0))]
    clip = make_tagged_clip(tmp_path / f"{encoding}.mp4", encoding, faces)
    out = tmp_path / "out.mp4"
    config = load_graph(root / "graphs" / "face_detect.yaml", overrides=[
        f"source.source={clip}", f"video_writer.path={out}", "video_writer.enabled=true", "video_writer.crf=0",
        "display.enabled=false"])
    annotated = [p.payload for p in Graph(config).run(outputs=["output_video"], timeout=60)["output_video"]]
    assert len(annotated) == 3
    assert all(str(f.yuv420p_encoding) == encoding and f.__dict__["_rgb"] is None for f in annotated)
    colorspace, color_range = TAGS[encoding]
    assert _tags(out) == (colorspace, color_range, colorspace, colorspace)
    with av.open(str(out)) as container:
        written = [p.to_ndarray(format="rgb24") for p in container.decode(video=0)]  # honours the tags
    for frame, rgb, source in zip(annotated, written, faces, strict=True):
        drawn = np.any(np.abs(frame.image.astype(np.int16) - source) > 30, axis=2).mean()
        assert 0.01 < drawn < 0.2, drawn  # boxes, keypoints and the fps counter (measured 2.5-3.5% of pixels)
        # Measured mean 0, max 0 (lossless, and the same conversion both sides). Tagged BT.601 limited as
        # before, the same bytes would read back off by a mean of 2-9 levels.
        diff = np.abs(rgb.astype(np.int16) - frame.image)
        assert diff.mean() < 0.1 and diff.max() <= 1, (diff.mean(), diff.max())


def test_frames_in_another_encoding_are_converted_into_the_streams(tmp_path):
    out = tmp_path / "mixed.mp4"
    images = colour_blocks(4)
    first = Frame.from_yuv420p(rgb_to_i420(images[0], BT709), encoding=BT709, fps=25.0)  # decides: BT.709
    frames = [first, Frame(images[1], index=1),  # RGB: converted by swscale, into BT.709
              Frame.from_yuv420p(rgb_to_i420(images[2], BT601), encoding=BT601, index=2),  # through its RGB
              Frame.from_yuv420p(rgb_to_i420(images[3], BT601_FULL), encoding=BT601_FULL, index=3)]
    CalculatorRunner(f"calculator: VideoWriterCalculator\noptions: {{path: '{out}', crf: 0}}").run({"IMAGE": frames})
    assert _tags(out) == (1, 1, 1, 1)
    decoded = _decoded_planes(out)
    assert np.array_equal(decoded[0], first.yuv420p)  # the stream's own encoding: as it is
    assert np.array_equal(decoded[1], rgb_to_i420(images[1], BT709))
    with av.open(str(out)) as container:
        written = [p.to_ndarray(format="rgb24") for p in container.decode(video=0)]
    # Inside each 8x8 block, away from the colour edges that halving chroma blurs (swscale's filter is wider than
    # OpenCV's 2x2 average): measured mean 0 (as it is), 0.9 (RGB), 1.1 (BT.601 planes), 1.8 (full range planes:
    # converted twice, 8-bit rounding each time), max 8. Written unconverted (or with BT.601's coefficients), the
    # same frames read back off by a mean of 6.7-8.5 levels, up to 30-40.
    inside = (np.arange(48) % 8 >= 2) & (np.arange(48) % 8 <= 5), (np.arange(64) % 8 >= 2) & (np.arange(64) % 8 <= 5)
    inside = inside[0][:, None] & inside[1][None, :]
    for frame, rgb in zip(frames, written, strict=True):
        diff = np.abs(rgb.astype(np.int16) - frame.image)[inside]
        assert diff.mean() < 2.5 and diff.max() <= 10, (frame.index, diff.mean(), diff.max())
