"""LandmarksJsonlCalculator (issue 9's per-frame schema) and MaskPngCalculator."""
import json

import numpy as np
import pytest

from pipelines import Packet
from pipelines.testing import CalculatorRunner
from pipelines.types import Classification, Frame, Landmarks, Mask

FRAME = Frame(np.zeros((100, 200, 3), np.uint8))


def test_landmarks_jsonl_pixels_visibility_labels_and_empty_frames(tmp_path):
    path = tmp_path / "out" / "pose.jsonl"
    lm = Landmarks(np.array([[0.5, 0.25, 0.1]], np.float32), visibility=np.array([0.75], np.float32))
    world = Landmarks(np.array([[0.1, -0.2, 0.3]], np.float32), relative=False, world=True)
    runner = CalculatorRunner(f"calculator: LandmarksJsonlCalculator\noptions: {{path: '{path}', kind: pose}}")
    runner.run({"LANDMARKS": [(0, [lm])], "WORLD_LANDMARKS": [(0, [world])],
                "HANDEDNESS": [(0, (Classification("Left", 0.9),))],
                "IMAGE": [Packet(0, FRAME), Packet(1, FRAME)]})
    first, second = [json.loads(line) for line in path.read_text().splitlines()]
    assert (first["width"], first["height"], first["timestamp_us"]) == (200, 100, 0)
    (obj,) = first["objects"]
    assert obj["kind"] == "pose" and obj["label"] == "Left" and obj["score"] == pytest.approx(0.9)
    assert obj["landmarks"] == [[100.0, 25.0, 20.0, 0.75]]  # x, y in pixels, z * width, visibility
    assert obj["world_landmarks"] == [[0.1, -0.2, 0.3, 0.75]]  # metres; the image landmarks' visibility
    assert second["objects"] == [] and second["timestamp_us"] == 1


def test_mask_png_one_file_per_frame(tmp_path):
    cv2 = pytest.importorskip("cv2", reason="MaskPngCalculator writes PNGs with OpenCV")

    p = np.zeros((100, 200), np.float32)
    p[:, 100:] = 1.0
    runner = CalculatorRunner(f"calculator: MaskPngCalculator\noptions: {{folder: '{tmp_path / 'masks'}'}}")
    frames = [Packet(0, Frame(FRAME.image, index=0)), Packet(1, Frame(FRAME.image, index=1))]
    runner.run({"MASK": [(0, Mask(p))], "IMAGE": frames})
    first = cv2.imread(str(tmp_path / "masks" / "frame_000000.png"), cv2.IMREAD_UNCHANGED)
    second = cv2.imread(str(tmp_path / "masks" / "frame_000001.png"), cv2.IMREAD_UNCHANGED)
    assert first.shape == (100, 200) and first.dtype == np.uint8
    assert first[0, 0] == 0 and first[0, 150] == 255
    assert second.max() == 0  # no mask at that frame: all black
