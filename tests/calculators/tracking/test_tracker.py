import numpy as np
import pytest

from calculators.tracking import ByteTracker, SortTracker
from pipelines import GraphConfigError
from pipelines.testing import CalculatorRunner
from pipelines.types import Detections, Frame, Tracks

ALGORITHMS = ["bytetrack", "sort"]


def dets(*boxes, scores=None, keypoints=None, labels=()) -> Detections:
    xyxy = np.array(boxes, np.float32).reshape(-1, 4)
    s = np.ones(len(xyxy), np.float32) if scores is None else np.array(scores, np.float32)
    kps = np.zeros((len(xyxy), 0, 2), np.float32) if keypoints is None else np.array(keypoints, np.float32)
    return Detections(xyxy, s, kps, tuple(labels))


def box(cx, cy, w=0.1, h=0.2):
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def runner(**options) -> CalculatorRunner:
    opts = ", ".join(f"{k}: {v}" for k, v in options.items())
    return CalculatorRunner(f"calculator: TrackerCalculator\noptions: {{{opts}}}")


def by_ts(packets) -> dict:
    return {p.timestamp: p.payload for p in packets}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_two_boxes_crossing_keep_their_ids(algorithm):
    frames = []
    for t in range(40):  # A goes right, B goes left, slightly lower; they overlap around t = 20
        frames.append(dets(box(0.2 + 0.015 * t, 0.5), box(0.8 - 0.015 * t, 0.53)))
    out = runner(algorithm=algorithm).run({"DETECTIONS": frames})
    tracked = by_ts(out["DETECTIONS"])
    first = tracked[0].track_ids.tolist()
    assert len(set(first)) == 2
    for t in range(40):
        d = tracked[t]
        assert len(d) == 2, t
        # Detection order is kept: A is always first, so its id must be too.
        assert d.track_ids.tolist() == first, f"ids swapped at frame {t}: {d.track_ids.tolist()}"
        np.testing.assert_allclose(d.xyxy, frames[t].xyxy, atol=1e-6)  # measured boxes on detection frames


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_missing_box_keeps_its_id_and_its_predicted_box_moves_on(algorithm):
    frames = [dets(box(0.1 + 0.01 * t, 0.5)) for t in range(30)]
    for t in range(15, 20):
        frames[t] = Detections.empty()  # the detector ran and missed it
    out = runner(algorithm=algorithm).run({"DETECTIONS": frames})
    tracks, tracked = by_ts(out["TRACKS"]), by_ts(out["DETECTIONS"])
    track_id = int(tracked[14].track_ids[0])
    last_x = tracks[14].xyxy[0, 0]
    for t in range(15, 20):
        tr: Tracks = tracks[t]
        assert tr.track_ids.tolist() == [track_id]
        assert not tr.matched[0] and tr.lost_frames[0] == t - 14 and tr.confirmed[0]
        assert tr.xyxy[0, 0] > last_x  # still moving right
        assert tr.xyxy[0, 0] == pytest.approx(0.05 + 0.01 * t, abs=0.005)
        last_x = tr.xyxy[0, 0]
        assert len(tracked[t]) == 0  # lost: not reported as a detection
    assert tracked[20].track_ids.tolist() == [track_id]
    assert tracks[20].matched[0] and tracks[20].lost_frames[0] == 0


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_frames_without_detections_get_predicted_boxes(algorithm):
    truth = [box(0.1 + 0.01 * t, 0.5 + 0.005 * t) for t in range(30)]
    detections = [(t, dets(truth[t], keypoints=[[truth[t][:2], truth[t][2:]]])) for t in range(0, 30, 3)]
    out = runner(algorithm=algorithm, min_hits=2).run({"DETECTIONS": detections, "TICK": list(range(30))})
    tracked, tracks = by_ts(out["DETECTIONS"]), by_ts(out["TRACKS"])
    assert sorted(tracked) == sorted(tracks) == list(range(30))  # both sent at every frame
    ids = {int(d.track_ids[0]) for d in tracked.values() if len(d)}
    assert len(ids) == 1
    for t in range(9, 30):
        d = tracked[t]
        assert len(d) == 1, t
        np.testing.assert_allclose(d.xyxy[0], truth[t], atol=0.004)  # predicted boxes follow the motion
        if t % 3:
            assert d.keypoints.shape == (1, 0, 2) and not tracks[t].matched[0]
        else:
            assert tracks[t].matched[0]
            np.testing.assert_allclose(d.keypoints, [[truth[t][:2], truth[t][2:]]], atol=1e-6)


def test_empty_detections_mean_missed_but_absent_ones_mean_not_run():
    truth = [box(0.1 + 0.01 * t, 0.5) for t in range(10)]
    base = [(t, dets(truth[t])) for t in range(6)]
    absent = runner().run({"DETECTIONS": base, "TICK": list(range(10))})
    empty = runner().run({"DETECTIONS": base + [(t, Detections.empty()) for t in range(6, 10)],
                          "TICK": list(range(10))})
    assert by_ts(absent["TRACKS"])[9].lost_frames.tolist() == [0]
    assert len(by_ts(absent["DETECTIONS"])[9]) == 1  # not run: still tracked, predicted
    assert by_ts(empty["TRACKS"])[9].lost_frames.tolist() == [4]
    assert len(by_ts(empty["DETECTIONS"])[9]) == 0  # ran and missed: lost


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_ids_are_never_reused(algorithm):
    frames, seen = [], []
    # Objects come and go in the same place; each new one must get a new id.
    for t in range(60):
        frames.append(dets(box(0.3, 0.5)) if (t // 10) % 2 == 0 else Detections.empty())
    out = runner(algorithm=algorithm, track_buffer=3, max_age=3).run({"DETECTIONS": frames})
    for d in by_ts(out["DETECTIONS"]).values():
        for tid in d.track_ids.tolist():
            if tid not in seen:
                seen.append(tid)
    assert len(seen) == 3 and seen == sorted(seen) and seen[0] == 1


def test_sort_waits_for_min_hits_except_on_the_first_frame():
    frames = [dets(box(0.2, 0.5))] + [dets(box(0.2, 0.5), box(0.7, 0.5)) for _ in range(5)]
    out = runner(algorithm="sort", min_hits=3).run({"DETECTIONS": frames})
    counts = [len(p.payload) for p in out["DETECTIONS"]]
    assert counts == [1, 1, 1, 2, 2, 2]
    tracks = by_ts(out["TRACKS"])
    assert tracks[1].confirmed.tolist() == [True, False]  # the newcomer is a track, not yet confirmed


def test_bytetrack_low_scores_continue_tracks_but_never_start_them():
    frames = [dets(box(0.2, 0.5), scores=[0.9]) for _ in range(5)]
    frames += [dets(box(0.2, 0.5), box(0.7, 0.5), scores=[0.3, 0.3]) for _ in range(5)]
    out = runner().run({"DETECTIONS": frames})
    last = by_ts(out["DETECTIONS"])[9]
    assert last.track_ids.tolist() == [1] and last.scores.tolist() == pytest.approx([0.3])
    assert by_ts(out["TRACKS"])[9].track_ids.tolist() == [1]


def test_labels_trails_and_frame_size_from_tick():
    truth = [box(0.2 + 0.01 * t, 0.5) for t in range(8)]
    image = np.zeros((90, 160, 3), np.uint8)
    ticks = [Frame(image, index=t) for t in range(8)]
    out = runner(trail_length=4).run({"DETECTIONS": [dets(b, labels=["face"]) for b in truth], "TICK": ticks})
    tracks = by_ts(out["TRACKS"])[7]
    assert tracks.labels == ("face",) and tracks.relative
    assert tracks.trails[0].shape == (4, 2)
    np.testing.assert_allclose(tracks.trails[0][:, 0], [0.24, 0.25, 0.26, 0.27], atol=1e-6)
    assert by_ts(out["DETECTIONS"])[7].labels == ("face",)


def test_pixel_boxes_stay_pixels():
    frames = [Detections(np.array([[10.0 + t, 20, 50 + t, 100]], np.float32), np.ones(1, np.float32),
                         relative=False) for t in range(5)]
    out = runner().run({"DETECTIONS": frames})
    last = out["DETECTIONS"][-1].payload
    assert not last.relative and not out["TRACKS"][-1].payload.relative
    np.testing.assert_allclose(last.xyxy, [[14, 20, 54, 100]])


def test_bad_options_are_refused_at_load_time():
    with pytest.raises((GraphConfigError, ValueError), match="algorithm"):
        runner(algorithm="deepsort").run({"DETECTIONS": [dets()]})
    with pytest.raises((GraphConfigError, ValueError), match="low_thresh"):
        runner(low_thresh=0.7).run({"DETECTIONS": [dets()]})


def test_trackers_run_without_the_graph():
    for tracker in (ByteTracker(), SortTracker(min_hits=1)):
        tracker.step(np.array([[0, 0, 10, 20]]), np.array([0.9]))
        tracker.step()  # a frame the detector skipped
        tracks = tracker.step(np.array([[1, 0, 11, 20]]), np.array([0.9]))
        assert [t.track_id for t in tracks] == [1] and tracks[0].matched_index == 0
