"""What keeping the decoder's planes saves per frame: face_detect's pixel handling before and after, same run.

Per clip size, CPU per frame (one OpenCV thread) of the work a frame's pixels go through between the decoder and
the encoder, outside decoding, inference and encoding themselves:

- before (frames RGB): PyAV's rgb24 conversion in the source, the letterbox warp from RGB, the overlay's
  full-frame copy, the writer's RGB->I420;
- after, drawn on (the fps counter or a box): the source's I420 array, the letterbox from the planes, the overlay's
  copy of the planes (drawing itself, the same work either way, is not counted); no conversion for the writer;
- after, nothing drawn (`show_fps: false`, a frame without faces): I420 array, letterbox from the planes; the
  frame goes to the writer as it came.

    python benchmarks/frame_conversions.py [--sizes 320x240,1280x720,1920x1080] [--repeats 140]

--repeats are split over 7 interleaved rounds; each figure is the median round.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import av  # noqa: E402
import cv2  # noqa: E402

from calculators.image.image_to_tensor import ImageToTensorCalculator  # noqa: E402
from calculators.image.yuv_warp import warp_yuv420p_to_rgb  # noqa: E402
from pipelines.types import Frame  # noqa: E402


def cpu_ms(fn, repeats: int) -> float:
    fn()
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - start) / repeats * 1e3


def bench(size: tuple[int, int], repeats: int) -> dict[str, float]:
    from make_sample_clip import ensure_clip

    with av.open(str(ensure_clip(size=size, seconds=1.0))) as container:
        picture = next(container.decode(video=0))
    letterbox = ImageToTensorCalculator.__new__(ImageToTensorCalculator)
    letterbox.options = ImageToTensorCalculator.Options()
    letterbox.open(None)
    matrix = letterbox._warp_for(size[1], size[0])[0]
    out, zero = (128, 128), cv2.BORDER_CONSTANT

    def before():
        rgb = picture.to_ndarray(format="rgb24")
        cv2.warpPerspective(rgb, matrix, out, flags=cv2.INTER_LINEAR, borderMode=zero)
        cv2.cvtColor(rgb.copy(), cv2.COLOR_RGB2YUV_I420)

    def after_drawn():
        frame = Frame.from_yuv420p(picture.to_ndarray())
        warp_yuv420p_to_rgb(cv2, frame.yuv420p_planes(), matrix, out, zero)
        frame.yuv420p.copy()  # the overlay draws on a copy of the planes, which the writer encodes as they are

    def after_untouched():
        frame = Frame.from_yuv420p(picture.to_ndarray())
        warp_yuv420p_to_rgb(cv2, frame.yuv420p_planes(), matrix, out, zero)

    # Interleaved rounds, median per variant: the machine is shared, and a burst of other work then lands on
    # all three alike instead of on one.
    variants = (("before", before), ("after_drawn", after_drawn), ("after_untouched", after_untouched))
    rounds = [{name: cpu_ms(fn, max(1, repeats // 7)) for name, fn in variants} for _ in range(7)]
    return {name: statistics.median(r[name] for r in rounds) for name, _ in variants}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="320x240,1280x720,1920x1080")
    parser.add_argument("--repeats", type=int, default=140)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    print(f"OpenCV {cv2.__version__}, PyAV {av.__version__}; CPU ms per frame, one thread")
    print(f"{'clip':<10} {'before':>7} {'drawn':>7} {'ratio':>6} {'untouched':>9} {'ratio':>6}")
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.lower().split("x"))
        r = bench((width, height), args.repeats)
        print(f"{size:<10} {r['before']:7.2f} {r['after_drawn']:7.2f} {r['before'] / r['after_drawn']:5.2f}x "
              f"{r['after_untouched']:9.2f} {r['before'] / r['after_untouched']:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
