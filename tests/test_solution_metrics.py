"""tests/solution_metrics.py measures what issue 9's fidelity criteria say, and the MediaPipe solution
references in tests/data/mediapipe_solutions/ have the schema the graphs emit."""
import copy
import json
import math

import numpy as np
import pytest

import media
import solution_metrics as sm

REF = media.SOLUTIONS_REFERENCE_DIR
LANDMARK_COUNTS = {"face": 468, "hand": 21, "pose": 33}
LANDMARK_FILES = sorted(REF.glob("*.jsonl.gz"))
MASK_FILES = sorted(REF.glob("*_masks.npz"))
# one file per solution in the fast subset, the rest marked slow
FAST = {"cup_hands_hands", "grace_hopper_pan_pose", "astronaut_face_mesh", "cup_hands_selfie_general",
        "astronaut_pan_pose_segmentation"}


def _params(paths, suffix):
    names = [p.name[: -len(suffix)] for p in paths]
    return [pytest.param(p, id=n, marks=() if n in FAST else pytest.mark.slow) for p, n in zip(paths, names)]


def square(kind="hand", x=100.0, y=100.0, side=30.0, n=21, visibility=None):
    """An object whose landmarks lie on a side x side square's edges (box diagonal = side * sqrt 2)."""
    t = np.linspace(0.0, 1.0, n)
    pts = [[x + side * min(1.0, 2 * u), y + side * max(0.0, 2 * u - 1), 0.0] for u in t]
    pts[-1] = [x, y + side, 0.0]  # close the box: corners (x, y), (x+side, y), (x+side, y+side), (x, y+side)
    if visibility is not None:
        pts = [p + [v] for p, v in zip(pts, visibility)]
    return {"kind": kind, "label": None, "score": None, "landmarks": pts, "world_landmarks": []}


def shifted(obj, dx, dy=0.0, only=None):
    out = copy.deepcopy(obj)
    for i, lm in enumerate(out["landmarks"]):
        if only is None or i in only:
            lm[0] += dx
            lm[1] += dy
    return out


def row(objects, frame=0, w=320, h=240):
    return {"frame": frame, "timestamp_us": 0, "width": w, "height": h, "objects": objects}


def test_landmark_error_is_the_mean_distance_over_the_box_diagonal():
    hand = square(side=30.0)
    assert sm.object_size(hand) == pytest.approx(30.0 * math.sqrt(2))
    assert sm.landmark_error(hand, hand) == 0.0
    assert sm.landmark_error(hand, shifted(hand, 3.0, 4.0)) == pytest.approx(5.0 / (30.0 * math.sqrt(2)))


def test_pose_counts_only_landmarks_the_reference_sees():
    vis = [1.0] * 20 + [0.1] * 13
    pose = square("pose", n=33, visibility=vis)
    far = shifted(pose, 500.0, only=range(20, 33))  # invisible landmarks wander off: not measured
    assert sm.landmark_error(pose, far) == 0.0
    # the box is the visible landmarks' too, so off-frame legs do not inflate the tolerance
    legs = shifted(pose, 0.0, 2000.0, only=range(20, 33))
    assert sm.object_size(legs) == pytest.approx(sm.object_size(square("pose", n=33)), rel=0.3)
    assert sm.landmark_error(pose, shifted(pose, 2.0, only=range(20))) == pytest.approx(
        2.0 / sm.object_size(pose))


def test_matching_pairs_objects_by_box_overlap_not_order():
    left, right = square(x=10.0), square(x=200.0)
    pairs = sm.match_objects([left, right], [shifted(right, 1.0), shifted(left, 1.0)])
    assert sorted(pairs) == [(0, 1), (1, 0)]
    assert sm.match_objects([left], [square(x=100.0)]) == []  # no overlap: unpaired
    assert sm.match_objects([square("hand")], [square("face")]) == []  # kinds never pair


def test_a_frame_agrees_only_with_equal_counts_and_every_object_within_tolerance():
    hand, face = square("hand"), square("face", x=200.0, n=468)
    size = sm.object_size(hand)
    ok = sm.compare_frames([row([hand])], [row([shifted(hand, 0.04 * size)])])[0]
    assert ok.agrees()  # 4% < 5% for hands
    assert not sm.compare_frames([row([face])], [row([shifted(face, 0.03 * sm.object_size(face))])])[0].agrees()
    extra = sm.compare_frames([row([hand])], [row([hand, face])])[0]
    assert not extra.counts_equal and not extra.agrees()
    empty = sm.compare_frames([row([])], [row([])])[0]
    assert empty.agrees()
    with pytest.raises(ValueError, match="frame counts differ"):
        sm.compare_frames([row([])], [])
    with pytest.raises(ValueError, match="size"):
        sm.compare_frames([row([], w=320)], [row([], w=640)])


def test_mask_iou():
    a = np.zeros((4, 4), np.uint8)
    assert sm.mask_iou(a, a) == 1.0  # nobody in either
    a[:2] = 255
    b = np.zeros_like(a)
    b[:, :2] = 200
    assert sm.mask_iou(a, b) == pytest.approx(4 / 12)
    assert sm.mask_iou(a, np.where(a > 0, 128, 127).astype(np.uint8)) == 1.0  # 0.5 rounds to 128
    with pytest.raises(ValueError):
        sm.mask_iou(a, a[:2])


def test_graph_mask_pngs_read_back_in_frame_order(tmp_path):
    cv2 = pytest.importorskip("cv2", reason="needs OpenCV")
    stack = np.zeros((3, 5, 7), np.uint8)
    for i in range(3):
        stack[i, i] = 255
        cv2.imwrite(str(tmp_path / f"frame_{i:06d}.png"), stack[i])
    assert np.array_equal(sm.read_mask_dir(tmp_path), stack)
    with pytest.raises(FileNotFoundError):
        sm.read_mask_dir(tmp_path / "missing")


@pytest.mark.skipif(not LANDMARK_FILES, reason="no reference JSONL (scripts/make_mediapipe_solution_reference.py)")
@pytest.mark.parametrize("path", _params(LANDMARK_FILES, ".jsonl.gz"))
def test_reference_has_the_graph_schema_and_agrees_with_itself_not_with_a_perturbed_copy(path):
    rows = sm.read_jsonl(path)
    assert [r["frame"] for r in rows] == list(range(len(rows)))
    for r in rows:
        assert set(r) == {"frame", "timestamp_us", "width", "height", "objects"}
        for obj in r["objects"]:
            assert set(obj) == {"kind", "label", "score", "landmarks", "world_landmarks"}
            assert len(obj["landmarks"]) == LANDMARK_COUNTS[obj["kind"]]
            assert {len(lm) for lm in obj["landmarks"]} == {4 if obj["kind"] == "pose" else 3}
            if obj["kind"] == "hand":
                assert obj["label"] in ("Left", "Right") and 0.0 <= obj["score"] <= 1.0
                assert len(obj["world_landmarks"]) == 21

    same = sm.summarize(sm.compare_frames(rows, rows))
    assert same.agreement == 1.0 and (same.pairs == 0 or same.max_error == 0.0)

    with_objects = [i for i, r in enumerate(rows) if r["objects"]]
    if not with_objects:
        return
    bad = copy.deepcopy(rows)
    moved, dropped = with_objects[0], with_objects[-1]
    obj = bad[moved]["objects"][0]
    bad[moved]["objects"][0] = shifted(obj, 0.06 * sm.object_size(obj))  # beyond every tolerance
    bad[dropped]["objects"].pop()
    frames = sm.compare_frames(rows, bad)
    assert not frames[moved].agrees() and not frames[dropped].agrees()
    assert sum(f.agrees() for f in frames) == len(rows) - len({moved, dropped})


@pytest.mark.skipif(not MASK_FILES, reason="no reference masks (scripts/make_mediapipe_solution_reference.py)")
@pytest.mark.parametrize("path", _params(MASK_FILES, "_masks.npz"))
def test_reference_masks_are_source_size_and_iou_sees_a_change(path):
    data = sm.read_masks(path)
    masks = data["masks"]
    assert masks.dtype == np.uint8 and masks.ndim == 3 and set(np.unique(masks)) <= {0, 255}
    assert not masks[~data["has_mask"]].any()
    assert len(data["frame"]) == len(data["timestamp_us"]) == len(data["has_mask"]) == len(masks)
    name = path.name[: -len("_masks.npz")]
    for solution in ("_selfie_general", "_selfie_landscape", "_pose_segmentation"):
        if name.endswith(solution):
            name = name[: -len(solution)]
    info = media.MEDIA_INFO.get(name)
    if info:
        assert masks.shape == (info["frames"], info["height"], info["width"])
    assert sm.mask_ious(masks, masks).min() == 1.0
    fg = [i for i, m in enumerate(masks) if np.count_nonzero(m >= 128) > 100]
    if fg:
        cut = masks.copy()
        ys, xs = np.nonzero(masks[fg[0]] >= 128)
        cut[fg[0], ys[::2], xs[::2]] = 0  # half the person gone: the fidelity test must see it
        ious = sm.mask_ious(masks, cut)
        assert ious[fg[0]] == pytest.approx(0.5, abs=0.01)
        assert np.delete(ious, fg[0]).min(initial=1.0) == 1.0


def test_self_consistency_record_is_complete():
    path = REF / "self_consistency.json"
    if not path.is_file():
        pytest.skip("no self_consistency.json (scripts/make_mediapipe_solution_reference.py)")
    runs = json.loads(path.read_text())["runs"]
    names = {p.name[: -len(".jsonl.gz")] for p in LANDMARK_FILES} | {p.name[: -len("_masks.npz")] for p in MASK_FILES}
    assert names <= set(runs)
