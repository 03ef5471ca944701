import numpy as np

from calculators.render.annotation_overlay import draw
from calculators.render.palette import track_color
from pipelines.testing import CalculatorRunner
from pipelines.types import Detections, Tracks
import pytest

pytest.importorskip("cv2", reason="needs OpenCV and PyAV (pip install 'framegraph[video]')")


def tracks(matched=(True, False), confirmed=(True, True)) -> Tracks:
    trail = np.array([[0.1, 0.5], [0.3, 0.5], [0.5, 0.5]], np.float32)
    return Tracks(track_ids=np.array([3, 4]), xyxy=np.array([[0.4, 0.4, 0.6, 0.6], [0.1, 0.1, 0.2, 0.2]], np.float32),
                  scores=np.array([0.9, 0.8], np.float32), matched=np.array(matched), lost_frames=np.array([0, 2], np.int32),
                  confirmed=np.array(confirmed), trails=(trail, trail[:1]))


def test_trails_and_lost_boxes_in_the_track_colour():
    out = CalculatorRunner("calculator: TracksToRenderDataCalculator\noptions: {show_lost: true}").run(
        {"TRACKS": [tracks()]})
    (data,) = [p.payload for p in out["RENDER_DATA"]]
    assert len(data.lines) == 1 and data.lines[0][1] == track_color(3)  # track 4's trail has one point
    assert [(b[1], b[2]) for b in data.boxes] == [(track_color(4), "#4?")]


def test_unconfirmed_tracks_are_not_drawn():
    out = CalculatorRunner("calculator: TracksToRenderDataCalculator").run({"TRACKS": [tracks(confirmed=(False, False))]})
    (data,) = [p.payload for p in out["RENDER_DATA"]]
    assert data.lines == () and data.boxes == ()


def test_trail_polyline_is_drawn_along_its_points():
    image = np.zeros((100, 200, 3), np.uint8)
    out = CalculatorRunner("calculator: TracksToRenderDataCalculator").run({"TRACKS": [tracks()]})
    draw(image, out["RENDER_DATA"][0].payload)
    row = image[50]
    assert row[25:95].any(axis=1).all()  # from x=0.1*200 to 0.5*200
    assert not image[10].any() and not image[50, 120:].any()


def test_tracked_detections_get_their_track_colour_and_id_label():
    dets = Detections(np.array([[0.1, 0.1, 0.3, 0.3]], np.float32), np.array([0.9], np.float32),
                      labels=("face",), track_ids=np.array([7]))
    out = CalculatorRunner("calculator: DetectionsToRenderDataCalculator").run({"DETECTIONS": [dets]})
    (box,) = out["RENDER_DATA"][0].payload.boxes
    assert box[1] == track_color(7) and box[2] == "#7 face 0.90"
