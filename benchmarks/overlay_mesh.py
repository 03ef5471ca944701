"""The face mesh's drawing alone: AnnotationOverlayCalculator's drawing of the 852-triangle tesselation (2,556
one-pixel segments), anti-aliased against OpenCV's LINE_8 (MediaPipe's own drawing, and graphs/face_mesh.yaml's
choice), on yuv420p planes (what the graph draws on) and on an RGB image.

The landmarks are a fixed pseudo-random face: 468 points in the middle 40% of the frame. Rounds interleave the
settings; figures are medians of ms per frame, with the largest spread between rounds.

    python benchmarks/overlay_mesh.py [--rounds 7] [--frames 50] [--sizes 320x240,1280x720]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from calculators.render import annotation_overlay  # noqa: E402
from calculators.render.connections import FACE_TESSELATION  # noqa: E402
from pipelines.types import RenderData  # noqa: E402


def mesh(antialias: bool) -> RenderData:
    xy = 0.3 + 0.4 * np.random.default_rng(0).random((468, 2))
    lines = tuple((xy[list(tri)], (192, 192, 192)) for tri in FACE_TESSELATION)
    return RenderData(lines=lines, extra={"thickness": 1.0, "antialias": antialias})


def per_frame_ms(width: int, height: int, planes: bool, data: RenderData, frames: int) -> float:
    if planes:
        canvas = annotation_overlay._yuv_canvas(np.zeros((height * 3 // 2, width), np.uint8), width, height)
    else:
        canvas = [annotation_overlay._Plane(np.zeros((height, width, 3), np.uint8), annotation_overlay._rgb_value,
                                            0)]
    start = time.perf_counter()
    for _ in range(frames):
        annotation_overlay._draw(canvas, width, height, data)
    return (time.perf_counter() - start) * 1000 / frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--sizes", default="320x240,1280x720")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    settings = [(planes, aa) for planes in (True, False) for aa in (True, False)]
    data = {aa: mesh(aa) for aa in (True, False)}
    print(f"face mesh tesselation drawn, ms per frame, median of {args.rounds} rounds (one OpenCV thread)\n")
    print("| size | canvas | anti-aliased | LINE_8 | LINE_8 vs anti-aliased | largest spread |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        samples: dict = {s: [] for s in settings}
        for _ in range(args.rounds):
            for planes, aa in settings:
                samples[(planes, aa)].append(per_frame_ms(width, height, planes, data[aa], args.frames))
        for planes in (True, False):
            smooth, line8 = (statistics.median(samples[(planes, aa)]) for aa in (True, False))
            spread = max((max(s) - min(s)) / statistics.median(s) for s in (samples[(planes, True)],
                                                                           samples[(planes, False)]))
            print(f"| {size} | {'yuv420p planes' if planes else 'RGB'} | {smooth:.2f} | {line8:.2f} | "
                  f"{smooth / line8:.2f}x | {spread:.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
