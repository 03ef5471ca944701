"""DetectionsJsonlCalculator: relative detections in, one JSON line of pixels per frame out."""
import json

import numpy as np
import pytest

from pipelines import Graph, GraphValidationError
from pipelines.testing import CalculatorRunner
from pipelines.types import Detections, Frame

W, H = 200, 100


def frame(index: int) -> Frame:
    return Frame(np.zeros((H, W, 3), np.uint8), index=index, source="synthetic")


def two_faces() -> Detections:
    return Detections(
        xyxy=np.array([[0.1, 0.2, 0.5, 0.6], [0.123456, 0.5, 0.25, 0.75]], np.float32),
        scores=np.array([0.95678, 0.5], np.float32),
        keypoints=np.array([[[0.2, 0.3], [0.4, 0.3]], [[0.15, 0.6], [0.2, 0.6]]], np.float32),
    )


def tracked_person() -> Detections:
    return Detections(xyxy=np.array([[0.0, 0.0, 1.0, 1.0]], np.float32), scores=np.array([0.7], np.float32),
                      labels=("person",), track_ids=np.array([7]))


def run(path, options: str = "") -> list[dict]:
    runner = CalculatorRunner(f"""
        calculator: DetectionsJsonlCalculator
        options: {{path: '{path}'{options}}}
    """)
    runner.run({
        "DETECTIONS": [(0, two_faces()), (66_666, tracked_person())],  # none at 33_333
        "IMAGE": [(0, frame(10)), (33_333, frame(11)), (66_666, frame(12))],
    })
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_lines_in_pixels_one_per_frame(tmp_path):
    path = tmp_path / "out" / "nested" / "dets.jsonl"  # parent folders are created
    rows = run(path)
    assert [r["frame"] for r in rows] == [10, 11, 12]  # the frame's own index, not a line count
    assert [r["timestamp_us"] for r in rows] == [0, 33_333, 66_666]
    assert all((r["width"], r["height"]) == (W, H) for r in rows)

    first = rows[0]["detections"]
    assert len(first) == 2
    assert first[0]["xyxy"] == [20.0, 20.0, 100.0, 60.0]
    assert first[1]["xyxy"] == [24.69, 50.0, 50.0, 75.0]  # 0.123456 * 200, rounded to 2 decimals
    assert first[0]["score"] == 0.96
    assert first[0]["keypoints"] == [[40.0, 30.0], [80.0, 30.0]]
    assert first[0]["label"] == "face" and "track_id" not in first[0]

    assert rows[1]["detections"] == []  # no DETECTIONS packet at that timestamp: an empty list, not a gap

    (person,) = rows[2]["detections"]
    assert person == {"xyxy": [0.0, 0.0, 200.0, 100.0], "score": 0.7, "label": "person", "track_id": 7}


def test_label_and_decimals_options(tmp_path):
    rows = run(tmp_path / "dets.jsonl", ", label: head, decimals: 3")
    first = rows[0]["detections"]
    assert first[1]["xyxy"][0] == 24.691 and first[0]["score"] == 0.957
    assert {d["label"] for d in first} == {"head"}


def test_pixel_detections_pass_through_unscaled(tmp_path):
    path = tmp_path / "px.jsonl"
    dets = Detections(np.array([[5.5, 6.5, 50.25, 60.75]], np.float32), np.array([1.0], np.float32),
                      relative=False)
    CalculatorRunner(f"calculator: DetectionsJsonlCalculator\noptions: {{path: '{path}'}}").run(
        {"DETECTIONS": [(0, dets)], "IMAGE": [(0, frame(0))]})
    (row,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert row["detections"][0]["xyxy"] == [5.5, 6.5, 50.25, 60.75]


def test_path_is_required():
    with pytest.raises(GraphValidationError, match="missing required option 'path'"):
        Graph.from_string("""
inputs: [d, v]
nodes:
  - calculator: DetectionsJsonlCalculator
    inputs: {DETECTIONS: d, IMAGE: v}
""")
