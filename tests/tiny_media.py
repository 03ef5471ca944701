"""Tiny clips and images made on the spot (64x48, a few frames), for tests that run a graph per file."""
from fractions import Fraction
from pathlib import Path

import numpy as np


def make_clip(path: Path, frames: int, fps: int = 10) -> Path:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 10 * i % 250, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def make_image(path: Path) -> Path:
    import av

    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = 64, 48, "rgb24"
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), 90, np.uint8), format="rgb24")):
            container.mux(packet)
    return path


def colour_blocks(count: int, width: int = 64, height: int = 48, seed: int = 0) -> list[np.ndarray]:
    """RGB images of 8x8 blocks in saturated colours: where the matrix or range is misread, colours move by tens of
    levels, and block edges show how chroma is resampled."""
    rng = np.random.default_rng(seed)
    levels = np.array([0, 40, 200, 255], np.uint8)
    blocks = [levels[rng.integers(0, 4, (height // 8, width // 8, 3))] for _ in range(count)]
    return [np.ascontiguousarray(b.repeat(8, axis=0).repeat(8, axis=1)) for b in blocks]


# (AVColorSpace = primaries = transfer, AVColorRange) of each encoding, by pipelines.yuv.YuvEncoding's name.
TAGS = {"bt601": (6, 1), "bt709": (1, 1), "bt601-full": (6, 2), "bt709-full": (1, 2)}


def make_tagged_clip(path: Path, encoding: str, images: list[np.ndarray], fps: int = 10) -> Path:
    """A lossless H.264 clip (x264, crf 0) of RGB `images` whose pictures are in `encoding` ("bt709",
    "bt601-full", ...) and tagged so, stream and pictures, as an HD camera or a phone writes them. PyAV (swscale)
    makes the planes; the decoder gives back exactly those (full range comes back as yuvj420p)."""
    import av

    colorspace, color_range = TAGS[encoding]
    height, width = images[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "0"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        cc = stream.codec_context
        cc.colorspace = cc.color_primaries = cc.color_trc = colorspace
        cc.color_range = color_range
        for i, rgb in enumerate(images):
            picture = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format="yuv420p", dst_colorspace="ITU709" if colorspace == 1 else "ITU601", dst_color_range=color_range)
            picture.colorspace, picture.color_range = colorspace, color_range
            picture.pts, picture.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(picture))
        container.mux(stream.encode(None))
    return path
