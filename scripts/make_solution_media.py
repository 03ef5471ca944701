#!/usr/bin/env python
"""Make the solution test clips ``assets/media/cup_hands.mp4`` and ``grace_hopper_pan.mp4``.

* ``cup_hands.mp4``: OpenCV's ``doc/js_tutorials/js_assets/cup.mp4`` (a hand
  holding and turning a black cup; Apache-2.0, from the opencv-python source
  distribution) re-encoded at half size, 320x240, without its audio, keeping
  all 217 frames and their timing (26.777 fps).  Get the source distribution
  with pip (it is not importable, so nothing locates it automatically)::

      pip download --no-deps --no-binary opencv-python opencv-python==5.0.0.93 -d /tmp/ocv
      python scripts/make_solution_media.py --opencv-sdist /tmp/ocv/opencv_python-5.0.0.93.tar.gz

  (``--no-binary :all:`` would also try to build NumPy from source for the
  sdist's build requirements; ``--no-binary opencv-python`` is enough.)
  ``--cup PATH`` takes an already extracted ``cup.mp4`` instead.

* ``grace_hopper_pan.mp4``: a slow pan and zoom over matplotlib's
  ``mpl-data/sample_data/grace_hopper.jpg`` (512x600; US Navy photograph,
  public domain), made like scripts/make_sample_clip.py's astronaut clip but in
  *portrait* 240x320 (so the landscape segmentation model meets portrait
  video), 25 fps, 90 frames; face and shoulders stay in view.  The photo is
  located through ``importlib.metadata.distribution("matplotlib")`` without
  importing matplotlib.  Without ``--opencv-sdist``/``--cup`` only this clip
  is made.

Both are H.264 (libx264 ``preset=medium``, ``crf=23``, single-threaded, so the
files are byte-for-byte reproducible for a PyAV build), yuv420p, BT.601 limited
range, a keyframe every second, no audio.  Frames are resampled in NumPy (2x2
box average for the cup, bilinear for the pan), not by OpenCV.
Requirements: ``av`` (PyAV) and ``numpy``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import io
import math
import os
import sys
import tarfile
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_sample_clip import render  # noqa: E402  (same bilinear resampler as the astronaut clip)

REPO_ROOT = Path(__file__).resolve().parent.parent
MEDIA_DIR = REPO_ROOT / "assets" / "media"
CUP_MEMBER_SUFFIX = "opencv/doc/js_tutorials/js_assets/cup.mp4"
GRACE_HOPPER_REL = "matplotlib/mpl-data/sample_data/grace_hopper.jpg"
PAN_SIZE = (240, 320)  # portrait
PAN_FPS = 25
PAN_FRAMES = 90

# (u in [0, 1], centre x, centre y, window width) in photo pixels (512x600); the
# window keeps the 3:4 output aspect.  The face spans about x 166..366, y 128..328.
PAN_KEYFRAMES = (
    (0.00, 256.0, 300.0, 450.0),  # whole height: face ~105 px wide, shoulders in view
    (0.45, 300.0, 280.0, 340.0),  # drift right and closer: face moves left
    (1.00, 262.0, 250.0, 270.0),  # zoom in: face ~180 px wide, centred
)


def _ease(t: float) -> float:
    return 0.5 - 0.5 * math.cos(math.pi * t)


def pan_window(u: float, img_w: int, img_h: int, out_w: int, out_h: int):
    """Crop window (x0, y0, w, h) at path position ``u``, kept inside the photo."""
    for (u0, *a), (u1, *b) in zip(PAN_KEYFRAMES, PAN_KEYFRAMES[1:]):
        if u <= u1:
            t = _ease((u - u0) / (u1 - u0))
            cx, cy, w = (p + (q - p) * t for p, q in zip(a, b))
            break
    h = w * out_h / out_w
    scale = min(1.0, img_w / w, img_h / h)
    w, h = w * scale, h * scale
    cx = min(max(cx, w / 2), img_w - w / 2)
    cy = min(max(cy, h / 2), img_h - h / 2)
    return cx - w / 2, cy - h / 2, w, h


def grace_hopper_path() -> Path:
    try:
        dist = importlib.metadata.distribution("matplotlib")
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit("matplotlib is not installed (pip install matplotlib)")
    path = Path(str(dist.locate_file(GRACE_HOPPER_REL)))
    if not path.is_file():
        raise SystemExit(f"matplotlib is installed but has no {GRACE_HOPPER_REL}")
    return path


def decode_rgb(source):
    """Yield the video frames of a path or file object as RGB uint8 arrays (PyAV)."""
    import av

    with av.open(source) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def cup_source(sdist: Path | None, cup: Path | None):
    """(file object or path, sha256 of cup.mp4) from the sdist or an extracted file."""
    if cup is not None:
        data = cup.read_bytes()
    else:
        with tarfile.open(sdist) as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith(CUP_MEMBER_SUFFIX)), None)
            if member is None:
                raise SystemExit(f"{sdist}: no {CUP_MEMBER_SUFFIX} inside")
            data = tar.extractfile(member).read()
    return io.BytesIO(data), hashlib.sha256(data).hexdigest()


def half_size(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    blocks = rgb[:h, :w].astype(np.uint16).reshape(h // 2, 2, w // 2, 2, 3)
    return ((blocks.sum(axis=(1, 3)) + 2) // 4).astype(np.uint8)


def encode(path: Path, frames, rate: Fraction, crf: int = 23) -> int:
    """H.264/yuv420p MP4 of RGB ``frames`` at a constant ``rate``; returns the frame count."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    keyint = max(1, round(float(rate)))
    n = 0
    with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.time_base = 1 / rate
        stream.pix_fmt = "yuv420p"
        cc = stream.codec_context
        cc.thread_count = 1  # byte-for-byte reproducible
        cc.color_range, cc.colorspace, cc.color_primaries, cc.color_trc = 1, 6, 6, 6
        # no-mbtree: with x264's macroblock tree the first GOP came out different from run to run
        # (same pixels, one thread); without it the output is byte-for-byte repeatable
        cc.options = {"preset": "medium", "crf": str(crf),
                      "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:no-mbtree=1"}
        for i, rgb in enumerate(frames):
            if i == 0:
                stream.height, stream.width = rgb.shape[:2]
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i, 1 / rate
            for packet in stream.encode(frame):
                out.mux(packet)
            n += 1
        for packet in stream.encode():
            out.mux(packet)
    os.replace(tmp, path)
    return n


def pan_frames(image: Path):
    img = next(decode_rgb(str(image)))
    out_w, out_h = PAN_SIZE
    for i in range(PAN_FRAMES):
        u = i / (PAN_FRAMES - 1)
        yield render(img, pan_window(u, img.shape[1], img.shape[0], out_w, out_h), out_w, out_h)


def _report(path: Path, n: int, note: str = "") -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"{path}: {n} frames, {path.stat().st_size} bytes, sha256 {digest}{note}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--opencv-sdist", type=Path, help="opencv_python-*.tar.gz (source of cup.mp4)")
    p.add_argument("--cup", type=Path, help="an extracted cup.mp4 instead of --opencv-sdist")
    p.add_argument("--out-dir", type=Path, default=MEDIA_DIR)
    args = p.parse_args(argv)

    out = args.out_dir / "grace_hopper_pan.mp4"
    _report(out, encode(out, pan_frames(grace_hopper_path()), Fraction(PAN_FPS)))
    if args.opencv_sdist is None and args.cup is None:
        print("cup_hands.mp4 skipped: give --opencv-sdist or --cup")
        return 0
    source, source_sha = cup_source(args.opencv_sdist, args.cup)
    import av

    with av.open(source) as container:
        rate = container.streams.video[0].average_rate  # 26777/1000, constant
    source.seek(0)
    frames = (half_size(rgb) for rgb in decode_rgb(source))
    out = args.out_dir / "cup_hands.mp4"
    _report(out, encode(out, frames, Fraction(rate)), f" (from cup.mp4 sha256 {source_sha})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
