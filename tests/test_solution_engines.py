"""The solution graphs on ONNX Runtime, OpenVINO and LiteRT against MediaPipe 0.10.21's own output, with issue
9's criteria (the same as tests/calculators/landmarks/test_solution_fidelity.py and test_hands_fidelity.py, which
run the graphs' default engines, OpenVINO then ONNX Runtime, on every clip): per frame the same number of
objects, each object's mean landmark distance within 2% (face) or 5% (hand, pose) of its size on >= 98% of
frames; masks with mean IoU >= 0.97. One clip per solution, to keep the slow suite short. ONNX Runtime and
OpenVINO read the .onnx models; LiteRT runs the original .tflite files (each module lists both, and the engine
takes the format it can run). Per-engine status: docs/engines.md, "The solution graphs"."""
import av
import numpy as np
import pytest

import media
import solution_metrics as sm
from pipelines import Graph, Packet, parse_override
from pipelines.types import Frame

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ENGINES = [pytest.param("onnxruntime", marks=pytest.mark.onnxruntime),
           pytest.param("openvino", marks=pytest.mark.openvino), pytest.param("litert", marks=pytest.mark.litert)]
MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "litert": "ai_edge_litert"}


@pytest.fixture(params=ENGINES)
def engine(request):
    pytest.importorskip(MODULES[request.param], reason=f"{request.param} is not installed")
    return request.param


def _check(reference: list[dict], rows: list[dict]) -> None:
    summary = sm.summarize(sm.compare_frames(reference, rows))
    assert summary.count_agreement >= 0.98 and summary.agreement >= 0.98, summary.line()


def _rows(sizes: list[tuple[int, int]], per_frame: list[list[dict]]) -> list[dict]:
    return [{"frame": i, "width": w, "height": h, "objects": objs}
            for i, ((w, h), objs) in enumerate(zip(sizes, per_frame))]


def _object(kind: str, lm, w: int, h: int, **extra) -> dict:
    xyz = lm.xyz.astype(np.float64) * [w, h, w]
    points = np.column_stack([xyz, lm.visibility]) if lm.visibility is not None else xyz
    return {"kind": kind, "landmarks": points.tolist(), **extra}


def _decode(clip) -> list[Frame]:
    with av.open(str(clip)) as container:
        return [Frame(f.to_ndarray(format="rgb24"), index=i) for i, f in enumerate(container.decode(video=0))]


def _run_file_graph(name: str, clip, engine: str, nodes: list[str], outputs: list[str]):
    # The nodes the graph's `cli: engine:` names, as run-graph --engine sets them.
    overrides = [f"source.source={clip}", "display.enabled=false"] + [f"{n}.engine={engine}" for n in nodes]
    graph = Graph.from_yaml(media.REPO_ROOT / "graphs" / f"{name}.yaml",
                            overrides=[parse_override(o) for o in overrides])
    return graph.run(outputs=outputs, timeout=240)


def test_hands_graph_on_engine(engine):
    out = _run_file_graph("hands", media.require(media.cup_hands_clip), engine,
                          ["palm_detection", "new_hand_0", "new_hand_1", "tracked_hand_0", "tracked_hand_1"],
                          ["multi_hand_landmarks", "multi_handedness", "image"])
    sizes = [(p.payload.width, p.payload.height) for p in out["image"]]
    objs = [[_object("hand", lm, w, h, label=c.label) for lm, c in zip(hands.payload, handed.payload)]
            for (w, h), hands, handed in zip(sizes, out["multi_hand_landmarks"], out["multi_handedness"])]
    reference = sm.read_jsonl(media.SOLUTIONS_REFERENCE_DIR / "cup_hands_hands.jsonl.gz")
    _check(reference, _rows(sizes, objs))


def test_face_mesh_graph_on_engine(engine):
    out = _run_file_graph("face_mesh", media.require(media.grace_hopper_pan_clip), engine,
                          ["face_detection", "face_0"], ["multi_face_landmarks", "image"])
    sizes = [(p.payload.width, p.payload.height) for p in out["image"]]
    objs = [[_object("face", lm, w, h) for lm in faces.payload]
            for (w, h), faces in zip(sizes, out["multi_face_landmarks"])]
    reference = sm.read_jsonl(media.SOLUTIONS_REFERENCE_DIR / "grace_hopper_pan_face_mesh.jsonl.gz")
    _check(reference, _rows(sizes, objs))


def _subgraph(calculator: str, port: str, engine: str) -> str:
    return f"""
inputs: [image]
outputs: [out]
nodes:
  - calculator: {calculator}
    inputs: {{IMAGE: image}}
    outputs: {{{port}: out}}
    options: {{engine: [{engine}]}}
"""


def test_pose_tracking_on_engine(engine):
    frames = _decode(media.require(media.grace_hopper_pan_clip))
    # 30 fps timestamps, as the reference fed MediaPipe: smoothing depends on them.
    packets = [Packet(round(i * 1_000_000 / 30), f) for i, f in enumerate(frames)]
    out = Graph.from_string(_subgraph("pose_tracking", "LANDMARKS", engine), base_dir=media.REPO_ROOT / "graphs").run(
        {"image": packets}, outputs=["out"], timeout=240)
    found = {p.timestamp: p.payload for p in out["out"]}
    sizes = [(f.width, f.height) for f in frames]
    objs = [[_object("pose", found[p.timestamp], w, h)] if p.timestamp in found else []
            for (w, h), p in zip(sizes, packets)]
    reference = sm.read_jsonl(media.SOLUTIONS_REFERENCE_DIR / "grace_hopper_pan_pose.jsonl.gz")
    _check(reference, _rows(sizes, objs))


def test_selfie_segmentation_on_engine(engine):
    frames = _decode(media.require(media.grace_hopper_pan_clip))
    out = Graph.from_string(_subgraph("selfie_segmentation", "MASK", engine),
                            base_dir=media.REPO_ROOT / "graphs").run(
        {"image": [Packet(i, f) for i, f in enumerate(frames)]}, outputs=["out"], timeout=240)
    ours = np.stack([np.clip(np.rint(p.payload.probability * 255), 0, 255).astype(np.uint8) for p in out["out"]])
    reference = sm.read_masks(media.SOLUTIONS_REFERENCE_DIR / "grace_hopper_pan_selfie_general_masks.npz")["masks"]
    assert sm.mask_ious(reference, ours).mean() >= 0.97
