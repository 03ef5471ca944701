#!/usr/bin/env python
"""Make the sample clip ``assets/media/astronaut_pan.mp4`` (and larger variants).

The clip is a slow pan/zoom over scikit-image's ``astronaut.png`` (Eileen
Collins, NASA; public domain): a crop window with the output's aspect ratio
moves and shrinks over the 512x512 photograph, so the face moves across the
frame and grows from about 60 to about 150 pixels wide (at 320x240) while
staying fully visible.

Default (the committed file)::

    python scripts/make_sample_clip.py
    # -> assets/media/astronaut_pan.mp4: 320x240, 25 fps, 3.6 s = 90 frames,
    #    H.264 (libx264, yuv420p), keyframe every 25 frames, no audio

Benchmark clip (NOT committed; generated on demand into a cache dir)::

    python scripts/make_sample_clip.py --size 1280x720 --seconds 10
    # -> $XDG_CACHE_HOME/framegraph/media/astronaut_pan_1280x720_25fps_10s.mp4
    python scripts/make_sample_clip.py --size 1280x720 --seconds 10 --out PATH

or from Python (e.g. a benchmark)::

    clip = ensure_clip(size=(1280, 720), seconds=10)   # generates once, then cached

Requirements: ``av`` (PyAV, which bundles FFmpeg with libx264) and ``numpy``
(1 or 2).  The photograph is located WITHOUT importing scikit-image, through
``importlib.metadata.distribution("scikit-image").locate_file(...)`` (see
tests/media.py), and decoded with PyAV's PNG decoder.  Frames are resampled
with a separable bilinear filter in NumPy (no OpenCV, so the pixels do not
depend on an OpenCV version) and encoded single-threaded, so the output is
byte-for-byte reproducible for a given PyAV/FFmpeg/x264 build.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import math
import os
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "assets" / "media" / "astronaut_pan.mp4"
DEFAULT_SIZE = (320, 240)
DEFAULT_SECONDS = 3.6
DEFAULT_FPS = 25
ASTRONAUT_REL = "skimage/data/astronaut.png"

# Camera path over the 512x512 photo: (u in [0, 1], centre x, centre y, window
# width), all in photo pixels; the window height follows the output aspect
# ratio.  The face is at about x 175..278, y 68..172 (centre ~ (225, 120)).
KEYFRAMES = (
    (0.00, 256.0, 192.0, 512.0),  # wide: whole width, face small, left of centre
    (0.45, 300.0, 165.0, 290.0),  # pan right: face moves to the left third
    (1.00, 215.0, 128.0, 210.0),  # zoom in: face large, right of centre
)


def astronaut_path() -> Path:
    try:
        dist = importlib.metadata.distribution("scikit-image")
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit("scikit-image is not installed (pip install scikit-image)")
    path = Path(str(dist.locate_file(ASTRONAUT_REL)))
    if not path.is_file():
        raise SystemExit(f"scikit-image is installed but has no {ASTRONAUT_REL}")
    return path


def load_rgb(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="rgb24")


def _ease(t: float) -> float:
    return 0.5 - 0.5 * math.cos(math.pi * t)


def window_at(u: float, img_w: int, img_h: int, out_w: int, out_h: int):
    """Crop window (x0, y0, w, h) in photo pixels at path position ``u``."""
    for (u0, *a), (u1, *b) in zip(KEYFRAMES, KEYFRAMES[1:]):
        if u <= u1:
            t = _ease((u - u0) / (u1 - u0))
            cx, cy, w = (p + (q - p) * t for p, q in zip(a, b))
            break
    else:
        cx, cy, w = KEYFRAMES[-1][1:]
    h = w * out_h / out_w
    scale = min(1.0, img_w / w, img_h / h)  # fit inside the photo
    w, h = w * scale, h * scale
    cx = min(max(cx, w / 2), img_w - w / 2)
    cy = min(max(cy, h / 2), img_h - h / 2)
    return cx - w / 2, cy - h / 2, w, h


def _taps(start: float, length: float, n_out: int, n_in: int):
    """Bilinear source indices/weights for ``n_out`` samples over [start, start+length)."""
    pos = start + (np.arange(n_out, dtype=np.float64) + 0.5) * (length / n_out) - 0.5
    pos = np.clip(pos, 0.0, n_in - 1.0)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    f = pos - i0
    return i0, i1, f


def render(img: np.ndarray, window, out_w: int, out_h: int) -> np.ndarray:
    """Resample the crop window to ``out_h x out_w`` RGB (separable bilinear)."""
    x0, y0, w, h = window
    src = img.astype(np.float64)
    yi0, yi1, fy = _taps(y0, h, out_h, img.shape[0])
    xi0, xi1, fx = _taps(x0, w, out_w, img.shape[1])
    rows = src[yi0] * (1.0 - fy)[:, None, None] + src[yi1] * fy[:, None, None]
    out = rows[:, xi0] * (1.0 - fx)[None, :, None] + rows[:, xi1] * fx[None, :, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def frames(size=DEFAULT_SIZE, seconds=DEFAULT_SECONDS, fps=DEFAULT_FPS, image=None):
    """Yield the clip's RGB frames (uint8, H x W x 3)."""
    out_w, out_h = size
    img = load_rgb(image or astronaut_path())
    n = frame_count(seconds, fps)
    for i in range(n):
        u = i / (n - 1) if n > 1 else 0.0
        yield render(img, window_at(u, img.shape[1], img.shape[0], out_w, out_h), out_w, out_h)


def frame_count(seconds: float, fps: int) -> int:
    return max(1, int(round(seconds * fps)))


# Colour encodings a clip can be written in: (AVColorSpace = primaries = transfer, swscale's name). BT.709 is what
# HD cameras and phones write; BT.601 what swscale's plain RGB->YUV gives (the committed clip).
ENCODINGS = {"bt601": (6, "ITU601"), "bt709": (1, "ITU709")}


def encode(path: Path, size=DEFAULT_SIZE, seconds=DEFAULT_SECONDS, fps=DEFAULT_FPS,
           crf: int = 23, encoding: str = "bt601") -> int:
    """Write the clip to ``path`` (H.264/yuv420p MP4, limited range, in ``encoding``); returns the frame count."""
    import av

    out_w, out_h = size
    if out_w % 2 or out_h % 2:
        raise SystemExit("width and height must be even for yuv420p")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    n = 0
    with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = out_w, out_h
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        cc = stream.codec_context
        cc.thread_count = 1  # byte-for-byte reproducible
        tag, sws_name = ENCODINGS[encoding]
        cc.color_range = 1  # limited range, as swscale's RGB->YUV gives it
        cc.colorspace = cc.color_primaries = cc.color_trc = tag
        cc.options = {
            "preset": "medium",
            "crf": str(crf),
            "x264-params": f"keyint={fps}:min-keyint={fps}:scenecut=0",
        }
        for i, rgb in enumerate(frames(size, seconds, fps)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format="yuv420p", dst_colorspace=sws_name, dst_color_range=1)
            frame.colorspace, frame.color_range = tag, 1
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
            n += 1
        for packet in stream.encode():
            out.mux(packet)
    os.replace(tmp, path)
    return n


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "framegraph" / "media"


def cache_path(size=DEFAULT_SIZE, seconds=DEFAULT_SECONDS, fps=DEFAULT_FPS, encoding: str = "bt601") -> Path:
    suffix = "" if encoding == "bt601" else f"_{encoding}"
    return cache_dir() / f"astronaut_pan_{size[0]}x{size[1]}_{fps}fps_{seconds:g}s{suffix}.mp4"


def ensure_clip(size=DEFAULT_SIZE, seconds=DEFAULT_SECONDS, fps=DEFAULT_FPS,
                out: Path | None = None, encoding: str = "bt601") -> Path:
    """Path to the clip with these settings, generating it first if missing.

    The default settings return the committed ``assets/media/astronaut_pan.mp4``;
    other settings go to :func:`cache_path` unless ``out`` is given.
    """
    size = tuple(size)
    if out is None:
        is_default = (size, seconds, fps, encoding) == (DEFAULT_SIZE, DEFAULT_SECONDS, DEFAULT_FPS, "bt601")
        out = DEFAULT_OUT if is_default else cache_path(size, seconds, fps, encoding)
    out = Path(out)
    if not out.is_file():
        encode(out, size, seconds, fps, encoding=encoding)
    return out


def _parse_size(text: str):
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}")
    return w, h


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=_parse_size, default=DEFAULT_SIZE,
                   help="WIDTHxHEIGHT (default 320x240)")
    p.add_argument("--seconds", type=float, default=DEFAULT_SECONDS,
                   help=f"duration (default {DEFAULT_SECONDS})")
    p.add_argument("--fps", type=int, default=DEFAULT_FPS)
    p.add_argument("--crf", type=int, default=23, help="x264 CRF (default 23)")
    p.add_argument("--encoding", choices=sorted(ENCODINGS), default="bt601",
                   help="colour matrix the pictures are written and tagged in (default bt601; HD cameras write bt709)")
    p.add_argument("--out", type=Path, default=None,
                   help="output path (default: assets/media/astronaut_pan.mp4 for the "
                        "default settings, else a file in the cache dir)")
    args = p.parse_args(argv)

    is_default = (args.size, args.seconds, args.fps, args.encoding) == (DEFAULT_SIZE, DEFAULT_SECONDS, DEFAULT_FPS,
                                                                        "bt601")
    out = args.out or (DEFAULT_OUT if is_default else cache_path(args.size, args.seconds, args.fps, args.encoding))
    n = encode(out, args.size, args.seconds, args.fps, args.crf, args.encoding)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    print(f"{out}: {args.size[0]}x{args.size[1]}, {args.fps} fps, {n} frames, "
          f"{out.stat().st_size} bytes, sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
