"""A test clip where faces move, cross and hide one another, with MOTChallenge ground truth.

Three face sprites cut from scikit-image's astronaut photograph (NASA, public domain; located without
importing scikit-image) move over a plain backdrop: one left to right at the back, one right to left in
front of it and larger (it is nearer: when they cross, it hides the other for about a second), one top to
bottom. The ground truth is each sprite's face box, placed the same way as the sprite, written only while
at least half of the face is visible (MOTChallenge convention: frame, id, x, y, w, h, 1, -1, -1, -1;
frames from 1).

    python scripts/make_crossing_clip.py [--out DIR]     # writes DIR/crossing.mp4 and DIR/crossing_gt.txt
"""
from __future__ import annotations

import argparse
import importlib.metadata
from pathlib import Path

import numpy as np

WIDTH, HEIGHT, FPS, FRAMES = 640, 360, 25, 150
# The astronaut's face box found by MediaPipe's full-range detector (tests/data/mediapipe_reference), and
# the region around it cut as the sprite: a face needs its surroundings (hair, chin) to be detected.
FACE = (173.7, 67.8, 277.6, 171.7)
CROP = (140, 30, 312, 215)


def astronaut() -> np.ndarray:
    import cv2

    path = importlib.metadata.distribution("scikit-image").locate_file("skimage/data/astronaut.png")
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def sprites() -> list[tuple[np.ndarray, tuple[float, float, float, float]]]:
    """(RGB sprite, face box inside it) for each of the three people."""
    x1, y1, x2, y2 = CROP
    base = astronaut()[y1:y2, x1:x2]
    face = (FACE[0] - x1, FACE[1] - y1, FACE[2] - x1, FACE[3] - y1)
    flipped = base[:, ::-1].copy()
    flipped_face = (base.shape[1] - face[2], face[1], base.shape[1] - face[0], face[3])
    tinted = np.clip(base.astype(np.int16) + np.array([30, -10, -25]), 0, 255).astype(np.uint8)
    return [(base, face), (flipped, flipped_face), (tinted, face)]


def paths(t: float) -> list[tuple[float, float, float, int]]:
    """(centre x, centre y, scale, depth) of each sprite at t in [0, 1]; larger depth is drawn later (in front)."""
    return [
        (80 + 480 * t, 170, 0.7, 0),            # walks right, at the back
        (560 - 480 * t, 190, 0.95, 2),          # walks left, nearer: hides #1 when they cross
        (470, 80 + 200 * t, 0.6, 1),            # walks down on the right
    ]


def render(frame_index: int, people) -> tuple[np.ndarray, list[tuple[int, tuple[float, float, float, float]]]]:
    import cv2

    t = frame_index / (FRAMES - 1)
    canvas = np.full((HEIGHT, WIDTH, 3), (70, 90, 110), np.uint8)
    canvas[HEIGHT * 2 // 3:] = (95, 85, 70)
    placed = []
    for pid, ((sprite, face), (cx, cy, scale, depth)) in enumerate(zip(people, paths(t)), start=1):
        h, w = sprite.shape[:2]
        sw, sh = int(round(w * scale)), int(round(h * scale))
        x0, y0 = int(round(cx - sw / 2)), int(round(cy - sh / 2))
        box = (x0 + face[0] * sw / w, y0 + face[1] * sh / h, x0 + face[2] * sw / w, y0 + face[3] * sh / h)
        placed.append((depth, pid, cv2.resize(sprite, (sw, sh), interpolation=cv2.INTER_AREA), x0, y0, box))
    visible_mask = np.zeros((len(placed) + 1, HEIGHT, WIDTH), bool)
    for depth, pid, img, x0, y0, box in sorted(placed):
        sx0, sy0 = max(0, -x0), max(0, -y0)
        dx0, dy0 = max(0, x0), max(0, y0)
        dx1, dy1 = min(WIDTH, x0 + img.shape[1]), min(HEIGHT, y0 + img.shape[0])
        if dx1 <= dx0 or dy1 <= dy0:
            continue
        canvas[dy0:dy1, dx0:dx1] = img[sy0:sy0 + dy1 - dy0, sx0:sx0 + dx1 - dx0]
        visible_mask[:, dy0:dy1, dx0:dx1] = False  # whatever was there is now hidden
        visible_mask[pid, dy0:dy1, dx0:dx1] = True
    truth = []
    for depth, pid, img, x0, y0, box in placed:
        bx0, by0 = max(0, int(box[0])), max(0, int(box[1]))
        bx1, by1 = min(WIDTH, int(np.ceil(box[2]))), min(HEIGHT, int(np.ceil(box[3])))
        area = max(1, (box[2] - box[0]) * (box[3] - box[1]))
        seen = visible_mask[pid, by0:by1, bx0:bx1].sum() if bx1 > bx0 and by1 > by0 else 0
        if seen / area >= 0.5:
            truth.append((pid, box))
    return canvas, truth


def make(out_dir: Path) -> tuple[Path, Path]:
    import av

    out_dir.mkdir(parents=True, exist_ok=True)
    clip, gt = out_dir / "crossing.mp4", out_dir / "crossing_gt.txt"
    people = sprites()
    lines = []
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.options = {"crf": "18", "preset": "medium"}
        stream.codec_context.thread_count = 1  # deterministic output
        for i in range(FRAMES):
            image, truth = render(i, people)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
            for pid, (x1, y1, x2, y2) in truth:
                lines.append(f"{i + 1},{pid},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},1,-1,-1,-1")
        container.mux(stream.encode(None))
    gt.write_text("\n".join(lines) + "\n")
    return clip, gt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("crossing_clip"))
    args = parser.parse_args()
    clip, gt = make(args.out)
    print(f"wrote {clip} ({FRAMES} frames, {WIDTH}x{HEIGHT} at {FPS} fps) and {gt}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
