"""run-graph's --landmarks and --masks on the solution graphs: the per-frame JSON schema issue 9 states, PNG masks
at the source size, and a batch that names its landmark files from each input."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.onnxruntime]
av = pytest.importorskip("av")
pytest.importorskip("onnxruntime")
REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "assets" / "media" / "grace_hopper_pan.mp4"  # 240x320, a face and shoulders


def run_graph(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines", *map(str, args), "--no-progress", "--no-display"],
                          cwd=cwd, capture_output=True, text=True, timeout=180)


def test_pose_landmarks_and_masks(tmp_path):
    proc = run_graph("pose", "--source", CLIP, "--max-frames", 4, "--landmarks", "pose.jsonl", "--masks", "masks",
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in (tmp_path / "pose.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == [0, 1, 2, 3]
    assert all(set(line) == {"frame", "timestamp_us", "width", "height", "objects"} for line in lines)
    assert (lines[0]["width"], lines[0]["height"]) == (240, 320)
    assert lines[1]["timestamp_us"] > lines[0]["timestamp_us"]
    person = lines[0]["objects"][0]
    assert person["kind"] == "pose" and len(person["landmarks"]) == 33 and len(person["world_landmarks"]) == 33
    nose = person["landmarks"][0]
    assert len(nose) == 4 and 0 <= nose[0] < 240 and 0 <= nose[1] < 320 and 0 <= nose[3] <= 1, "pixels, visibility"
    masks = sorted((tmp_path / "masks").iterdir())
    assert [m.name for m in masks] == [f"frame_{i:06d}.png" for i in range(4)]
    import cv2

    mask = cv2.imread(str(masks[0]), cv2.IMREAD_UNCHANGED)
    assert mask.dtype == np.uint8 and mask.shape == (320, 240), "8-bit, one channel, source size"
    assert 0 < (mask > 127).mean() < 1, "a person and a background"


def test_a_flag_the_graph_does_not_map_is_one_line(tmp_path):
    proc = run_graph("hands", "--source", CLIP, "--masks", "m", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {REPO / 'graphs' / 'hands.yaml'}: this graph does not take --masks (its 'cli:' section maps: "
        "source, max_frames, realtime, output, landmarks, display, engine, progress)"]


def test_a_batch_names_landmark_files_from_the_inputs(tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    shutil.copy(CLIP, src / "sub" / "grace.mp4")
    proc = run_graph("face_mesh", "--source", src, "--output-dir", tmp_path / "out", "--max-frames", 3,
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "out" / "sub"
    assert sorted(p.name for p in out.iterdir()) == ["grace.mp4", "grace_landmarks.jsonl"]
    faces = [json.loads(line)["objects"] for line in (out / "grace_landmarks.jsonl").read_text().splitlines()]
    assert len(faces) == 3 and all(len(f) == 1 and len(f[0]["landmarks"]) == 468 for f in faces)
