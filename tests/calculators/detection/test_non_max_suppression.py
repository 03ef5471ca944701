"""NonMaxSuppressionCalculator: MediaPipe's DEFAULT and WEIGHTED algorithms on hand-built detections."""
import numpy as np
import pytest

from calculators.detection.non_max_suppression import NonMaxSuppressionCalculator
from pipelines import Graph
from pipelines.testing import CalculatorRunner
from pipelines.types import Detections

Options = NonMaxSuppressionCalculator.Options


def dets(boxes, scores, keypoints=None, labels=()) -> Detections:
    boxes = np.array(boxes, np.float32)
    kps = np.array(keypoints, np.float32) if keypoints is not None else np.zeros((len(boxes), 0, 2), np.float32)
    return Detections(boxes, np.array(scores, np.float32), kps, tuple(labels))


# A, B and C overlap A by IoU 0.905 and 0.818; D is elsewhere. Input order is not score order.
FACES = dets([[0.12, 0.1, 0.52, 0.5], [0.6, 0.6, 0.9, 0.9], [0.1, 0.1, 0.5, 0.5], [0.1, 0.14, 0.5, 0.54]],
             [0.6, 0.8, 0.9, 0.3],
             [[[0.3, 0.2]], [[0.7, 0.7]], [[0.2, 0.2]], [[0.2, 0.4]]],
             ["b", "d", "a", "c"])


def nms(detections: Detections, **options) -> Detections:
    base = dict(min_suppression_threshold=0.3, overlap_type="INTERSECTION_OVER_UNION", algorithm="WEIGHTED")
    return NonMaxSuppressionCalculator(Options(**{**base, **options})).suppress(detections)


def test_weighted_averages_box_and_keypoints_by_score_and_keeps_the_top_score():
    out = nms(FACES)
    assert len(out) == 2 and out.labels == ("a", "d")
    np.testing.assert_allclose(out.scores, [0.9, 0.8])
    # (0.9 * A + 0.6 * B + 0.3 * C) / 1.8
    np.testing.assert_allclose(out.xyxy[0], [0.192 / 1.8, 0.192 / 1.8, 0.912 / 1.8, 0.912 / 1.8], rtol=1e-6)
    np.testing.assert_allclose(out.keypoints[0], [[0.42 / 1.8, 0.42 / 1.8]], rtol=1e-6)
    np.testing.assert_allclose(out.xyxy[1], [0.6, 0.6, 0.9, 0.9])  # a cluster of one is unchanged
    np.testing.assert_allclose(out.keypoints[1], [[0.7, 0.7]])


def test_weighted_clusters_around_the_top_box_not_by_chaining():
    # B overlaps A (IoU 1/3) and C (IoU 1/3); C only touches A. C must survive on its own.
    chain = dets([[0, 0, 1, 1], [0.5, 0, 1.5, 1], [1, 0, 2, 1]], [0.9, 0.8, 0.7])
    out = nms(chain)
    assert len(out) == 2
    np.testing.assert_allclose(out.xyxy[0], [0.4 / 1.7, 0, 1.7 / 1.7 + 0.4 / 1.7, 1], rtol=1e-6)
    np.testing.assert_allclose(out.xyxy[1], [1, 0, 2, 1])
    assert out.keypoints.shape == (2, 0, 2)


def test_default_keeps_the_best_of_each_overlapping_group():
    out = nms(FACES, algorithm="DEFAULT")
    assert out.labels == ("a", "d")
    np.testing.assert_allclose(out.xyxy, [[0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]])
    everything = nms(FACES, algorithm="DEFAULT", min_suppression_threshold=0.95)
    assert everything.labels == ("a", "d", "b", "c")  # sorted by score


@pytest.mark.parametrize("algorithm", ["DEFAULT", "WEIGHTED"])
def test_limits(algorithm):
    assert nms(FACES, algorithm=algorithm, max_num_detections=1).labels == ("a",)
    assert nms(FACES, algorithm=algorithm, min_score_threshold=0.85).labels == ("a",)


def test_overlap_types():
    # A small box inside a big one: IoU 0.04. MODIFIED_JACCARD divides by the second box's area, as
    # MediaPipe does: the lower-scored candidate in DEFAULT, the top box of the cluster in WEIGHTED.
    small_first = dets([[0.4, 0.4, 0.6, 0.6], [0, 0, 1, 1]], [0.9, 0.5])
    big_first = dets([[0.4, 0.4, 0.6, 0.6], [0, 0, 1, 1]], [0.5, 0.9])
    for case in (small_first, big_first):
        assert len(nms(case, algorithm="DEFAULT")) == 2
        assert len(nms(case, algorithm="DEFAULT", overlap_type="JACCARD")) == 2
    assert len(nms(small_first, algorithm="DEFAULT", overlap_type="MODIFIED_JACCARD")) == 2  # 0.04 / 1
    assert len(nms(big_first, algorithm="DEFAULT", overlap_type="MODIFIED_JACCARD")) == 1  # 0.04 / 0.04
    assert len(nms(small_first, overlap_type="MODIFIED_JACCARD")) == 1
    assert len(nms(big_first, overlap_type="MODIFIED_JACCARD")) == 2
    # JACCARD divides by the rectangle enclosing both: 0.5 / 1.5 here, like IoU, but 0.25 / 1.0 for a diagonal pair.
    diagonal = dets([[0, 0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75]], [0.9, 0.5])
    assert len(nms(diagonal, algorithm="DEFAULT", min_suppression_threshold=0.1)) == 1  # IoU 1/7
    assert len(nms(diagonal, algorithm="DEFAULT", overlap_type="JACCARD", min_suppression_threshold=0.1)) == 1
    assert len(nms(diagonal, algorithm="DEFAULT", overlap_type="JACCARD", min_suppression_threshold=0.2)) == 2


def test_multiclass_suppresses_within_each_label():
    two = dets([[0, 0, 1, 1], [0, 0, 1, 1]], [0.9, 0.8], labels=["face", "hand"])
    assert len(nms(two)) == 1
    out = nms(two, multiclass_nms=True)
    assert out.labels == ("face", "hand")


def test_streams_are_merged_and_empty_results_sent_on_request():
    a = dets([[0, 0, 1, 1]], [0.9])
    b = dets([[0.05, 0, 1.05, 1]], [0.9])
    graph = Graph.from_string("""
        inputs: [first, second]
        outputs: [kept]
        nodes:
          - calculator: NonMaxSuppressionCalculator
            inputs: {DETECTIONS: [first, second]}
            outputs: {DETECTIONS: kept}
            options: {min_suppression_threshold: 0.3, overlap_type: INTERSECTION_OVER_UNION, algorithm: WEIGHTED}
    """)
    out = graph.run({"first": [a, Detections.empty()], "second": [b, Detections.empty()]}, outputs=["kept"])
    (packet,) = out["kept"]  # nothing at timestamp 1: MediaPipe sends nothing when there is nothing
    assert packet.timestamp == 0 and len(packet.payload) == 1
    np.testing.assert_allclose(packet.payload.xyxy, [[0.025, 0, 1.025, 1]], rtol=1e-6)
    empty = CalculatorRunner("""
        calculator: NonMaxSuppressionCalculator
        options: {return_empty_detections: true}
    """).run({"DETECTIONS": [Detections.empty(6)]})
    assert [len(p.payload) for p in empty["DETECTIONS"]] == [0]


@pytest.mark.parametrize("bad, message", [
    ({"overlap_type": "IOU"}, "overlap_type must be one of"),
    ({"algorithm": "SOFT"}, "algorithm must be one of"),
    ({"max_num_detections": 0}, "max_num_detections"),
])
def test_bad_options_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        Options(**bad)
