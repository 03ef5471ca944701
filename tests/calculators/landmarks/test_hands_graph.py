"""graphs/hands.yaml end to end on the bundled cup clip (OpenCV's cup.mp4, one hand holding a cup): the real palm
and hand landmark models, the tracking loop and the detector gate. Not a fidelity test (that needs MediaPipe
0.10.21's own output): it checks the loop's behaviour and that landmarks land on the hand."""
from pathlib import Path

import numpy as np
import pytest

from pipelines import Graph, parse_override

ROOT = Path(__file__).resolve().parents[3]
pytest.importorskip("onnxruntime", reason="the hand models run on ONNX Runtime here")
pytest.importorskip("av", reason="the clip is decoded with PyAV")
pytestmark = pytest.mark.slow

CLIP = ROOT / "assets" / "media" / "cup_hands.mp4"


def _run(*overrides: str, frames: int = 20):
    if not CLIP.is_file():
        pytest.skip(f"{CLIP} is not in this checkout")
    graph = Graph.from_yaml(ROOT / "graphs" / "hands.yaml", overrides=[
        parse_override(f"source.max_frames={frames}"), parse_override("display.enabled=false"),
        *(parse_override(o) for o in overrides)])
    return graph.run(outputs=["multi_hand_landmarks", "palm_detection_image", "prev_hand_rects_from_landmarks"],
                     timeout=120)


def test_one_hand_tracked_on_every_frame_and_the_detector_runs_while_fewer_than_two():
    out = _run()
    hands = [p.payload for p in out["multi_hand_landmarks"]]
    assert len(hands) == 20 and all(len(h) == 1 for h in hands)
    # The hand holds the cup right of centre (x about 0.55-0.95, y about 0.35-0.65 of the frame).
    centres = np.array([h[0].xyz[:, :2].mean(axis=0) for h in hands])
    assert np.all((centres[:, 0] > 0.5) & (centres[:, 0] < 0.85) & (centres[:, 1] > 0.35) & (centres[:, 1] < 0.7))
    # From the second frame on, the hand's region comes from the previous frame's landmarks.
    prev = [p.payload for p in out["prev_hand_rects_from_landmarks"]]
    assert prev[0] == [] and all(len(r) == 1 for r in prev[1:])
    # Two hands wanted, one found: the palm detector still runs on every frame, as in MediaPipe.
    assert len(out["palm_detection_image"]) == 20


def test_the_detector_is_skipped_while_enough_hands_are_tracked():
    out = _run("enough_hands.min_size=1")
    assert [p.timestamp for p in out["palm_detection_image"]] == [out["multi_hand_landmarks"][0].timestamp]
    assert all(len(p.payload) == 1 for p in out["multi_hand_landmarks"])
