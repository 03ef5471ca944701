"""The solution graphs on awkward input (issue 9, item 6), run as a user would (`run-graph GRAPH --source CLIP
--landmarks OUT.jsonl` / `--masks DIR`) and judged from what they write: frames with nobody in them, a person
leaving and coming back across a cut, a face cut by the frame edge, tiny and huge frames, and the landscape
segmentation model on portrait video. No error, no stale ROI carried across the cut, nothing drawn where nothing
was found."""
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import media
import solution_metrics as sm
from pipelines.cli import main

av = pytest.importorskip("av", reason="the clips are written and read with PyAV")
pytest.importorskip("onnxruntime", reason="the models run on ONNX Runtime here")
pytestmark = pytest.mark.timeout(300)
# Under 2 s each here (2-core VM): no frames, tiny frames, the landscape model; the rest are marked slow.

GRAPHS = media.REPO_ROOT / "graphs"
LANDMARK_GRAPHS = ["hands", "face_mesh", "pose"]


def _write_clip(path: Path, frames: list[np.ndarray], fps: int = 30) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12", "preset": "ultrafast"}
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _read_clip(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _run(graph: str, source: Path, *flags: str) -> None:
    code = main([str(GRAPHS / f"{graph}.yaml"), "--source", str(source), "--no-display", "--no-progress",
                 "--quiet", *flags])
    assert code == 0, f"run-graph {graph} on {source.name} exited {code}"


def _landmarks(graph: str, source: Path, tmp_path: Path, *flags: str) -> list[dict]:
    out = tmp_path / f"{graph}_{source.stem}.jsonl"
    _run(graph, source, "--landmarks", str(out), *flags)
    return sm.read_jsonl(out)


def _grace_hopper_frames() -> list[np.ndarray]:
    return _read_clip(media.require(media.grace_hopper_pan_clip))


@pytest.mark.slow
@pytest.mark.parametrize("graph", LANDMARK_GRAPHS + ["selfie_segmentation"])
def test_nobody_in_view_finds_nothing_and_draws_nothing(graph, tmp_path):
    clip = _write_clip(tmp_path / "black.mp4", [np.zeros((240, 320, 3), np.uint8)] * 8)
    video = tmp_path / "out.mp4"
    # The frame-rate counter is the only thing the overlay draws on its own; switched off, nothing must be drawn.
    write = ("--output", str(video), "--set", "overlay.show_fps=false")
    if graph == "selfie_segmentation":
        _run(graph, clip, *write, "--masks", str(tmp_path / "masks"))
        masks = sm.read_mask_dir(tmp_path / "masks")
        assert masks.shape == (8, 240, 320) and (masks < sm.MASK_THRESHOLD).all()
    else:
        rows = _landmarks(graph, clip, tmp_path, *write)
        assert [r["objects"] for r in rows] == [[]] * 8
    drawn = np.stack(_read_clip(video)).astype(np.int16)
    # The input is black; re-encoding may move a grey level or two, never draw a point or a tint.
    assert drawn.shape == (8, 240, 320, 3) and np.abs(drawn).max() <= 3


@pytest.mark.slow
@pytest.mark.parametrize("graph", ["face_mesh", "pose"])
def test_no_stale_roi_across_a_cut_to_black(graph, tmp_path):
    person = _grace_hopper_frames()[:20]
    black = [np.zeros_like(person[0])] * 10
    clip = _write_clip(tmp_path / "cut.mp4", person + black + person)
    counts = [len(r["objects"]) for r in _landmarks(graph, clip, tmp_path)]
    assert len(counts) == 50
    assert counts[20:30] == [0] * 10, counts  # the ROI of frame 19 must not produce landmarks on black
    assert all(counts[:20]) and all(counts[31:]), counts  # found again at once (the detector reruns)


@pytest.mark.slow
def test_face_cut_by_the_frame_edge(tmp_path):
    frames = _grace_hopper_frames()[:20]
    reference = sm.read_jsonl(media.SOLUTIONS_REFERENCE_DIR / "grace_hopper_pan_face_mesh.jsonl.gz")[:20]
    # Crop every frame at the face's centre line, so the left half of the face is outside the frame.
    centre = int(np.median([np.mean(np.asarray(r["objects"][0]["landmarks"])[:, 0]) for r in reference]))
    width = (frames[0].shape[1] - centre) // 2 * 2  # H.264 wants even sizes
    clip = _write_clip(tmp_path / "half_face.mp4", [np.ascontiguousarray(f[:, centre:centre + width]) for f in frames])
    for graph in LANDMARK_GRAPHS:
        rows = _landmarks(graph, clip, tmp_path)
        assert len(rows) == 20 and all(r["width"] == width for r in rows)


@pytest.mark.parametrize("size", [(32, 24), pytest.param((3840, 2160), marks=pytest.mark.slow)], ids=["tiny", "huge"])
def test_tiny_and_huge_frames(size, tmp_path):
    import cv2

    w, h = size
    face = _grace_hopper_frames()[0]
    frames = [cv2.resize(face, (w, h), interpolation=cv2.INTER_AREA)] * 3
    clip = _write_clip(tmp_path / f"{w}x{h}.mp4", frames)
    for graph in LANDMARK_GRAPHS:
        rows = _landmarks(graph, clip, tmp_path)
        assert [(r["width"], r["height"]) for r in rows] == [(w, h)] * 3
    _run("selfie_segmentation", clip, "--masks", str(tmp_path / "masks"))
    assert sm.read_mask_dir(tmp_path / "masks").shape == (3, h, w)


def test_landscape_segmentation_model_on_portrait_video(tmp_path):
    clip = media.require(media.grace_hopper_pan_clip)  # 240x320, portrait
    landscape = media.REPO_ROOT / "assets" / "models" / "selfie_segmentation_landscape.onnx"
    _run("selfie_segmentation", clip, "--max-frames", "10", "--masks", str(tmp_path / "masks"),
         "--set", f"segmentation.model=[{landscape}]", "--set", "segmentation.input_height=144")
    masks = sm.read_mask_dir(tmp_path / "masks")
    assert masks.shape == (10, 320, 240)
    reference = sm.read_masks(media.SOLUTIONS_REFERENCE_DIR / "grace_hopper_pan_selfie_landscape_masks.npz")
    assert sm.mask_ious(reference["masks"][:10], masks).mean() >= 0.97  # the person found, not just a mask
