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
