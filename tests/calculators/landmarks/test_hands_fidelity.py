"""graphs/hands.yaml against MediaPipe 0.10.21's own Hands solution (video mode, default options) on the cup clip,
with issue 9's criteria: the same number of hands per frame, and each hand's mean landmark distance within 5% of
its size (the diagonal of its landmarks' box) on at least 98% of frames. The reference is
tests/data/mediapipe_solutions/<clip>_hands.jsonl.gz (scripts/make_mediapipe_solution_reference.py). Measured
here on the cup clip from RGB frames: counts equal 100%, agree 99.1%, error median 0.45% (the frames over 5% are
where the hand turns and MediaPipe's own handedness flips from frame to frame); since the video source hands
over yuv420p planes and ImageToTensor warps from them (e91e4cb): counts 99.1%, agree 98.2%, median 0.69%.
grace_hopper_pan (MediaPipe's false-positive hands on the medals, reproduced): 100%, 26 pairs, median 1.17%."""
import numpy as np
import pytest

import media
import solution_metrics as sm
from pipelines import Graph, parse_override

pytest.importorskip("onnxruntime", reason="the hand models run on ONNX Runtime here")
pytest.importorskip("av", reason="the clip is decoded with PyAV")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _graph_rows(clip) -> list[dict]:
    graph = Graph.from_yaml(media.REPO_ROOT / "graphs" / "hands.yaml", overrides=[
        parse_override(f"source.source={clip}"), parse_override("display.enabled=false")])
    out = graph.run(outputs=["multi_hand_landmarks", "multi_handedness", "image"], timeout=240)
    rows = []
    for i, (hands, handedness, image) in enumerate(zip(out["multi_hand_landmarks"], out["multi_handedness"],
                                                       out["image"])):
        w, h = image.payload.width, image.payload.height
        objects = [{"kind": "hand", "label": c.label, "score": c.score,
                    "landmarks": (lm.xyz.astype(np.float64) * [w, h, w]).tolist()}
                   for lm, c in zip(hands.payload, handedness.payload)]
        rows.append({"frame": i, "width": w, "height": h, "objects": objects})
    return rows


# The cup clip has one hand throughout; MediaPipe also "finds" hands on grace_hopper_pan's medals on 26 frames,
# which the graph reproduces; the others have none.
CLIPS = {"cup_hands": media.cup_hands_clip, "grace_hopper_pan": media.grace_hopper_pan_clip,
         "astronaut_pan": media.astronaut_pan_clip, "carphone": media.carphone_clip, "bikes": media.bikes_clip}


@pytest.mark.parametrize("name", list(CLIPS))
def test_hands_graph_matches_mediapipe(name):
    clip = media.require(CLIPS[name])
    reference = sm.read_jsonl(media.SOLUTIONS_REFERENCE_DIR / f"{name}_hands.jsonl.gz")
    summary = sm.summarize(sm.compare_frames(reference, _graph_rows(clip)))
    assert summary.count_agreement >= 0.98, summary.line()
    assert summary.agreement >= 0.98, summary.line()
