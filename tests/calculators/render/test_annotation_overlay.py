"""AnnotationOverlayCalculator: draws on a copy, never on the frame it was given."""
import numpy as np

from pipelines.testing import CalculatorRunner
from pipelines.types import Frame, RenderData
import pytest

pytest.importorskip("cv2", reason="needs OpenCV and PyAV (pip install 'framegraph[video]')")

BOX = RenderData(boxes=(((0.25, 0.25, 0.75, 0.75), (0, 255, 0), "face 0.93"),),
                 points=(((0.5, 0.5), (255, 0, 0)),), texts=(("hello", (0.0, 0.9), (255, 255, 255)),),
                 extra={"thickness": 2})


def frame(index=0) -> Frame:
    return Frame(np.full((120, 160, 3), 100, np.uint8), index=index, source="clip.mp4", fps=25.0, total_frames=9)


def test_draws_inside_the_box_region_on_a_copy():
    original = frame(4)
    pristine = original.image.copy()
    out = CalculatorRunner("""
        calculator: AnnotationOverlayCalculator
        options: {show_fps: false}
    """).run({"IMAGE": [original], "RENDER_DATA": [BOX]})
    (packet,) = out["IMAGE"]
    result = packet.payload
    np.testing.assert_array_equal(original.image, pristine)  # the input frame is untouched
    assert result is not original and result.image is not original.image
    assert (result.index, result.source, result.fps, result.total_frames) == (4, "clip.mp4", 25.0, 9)
    changed = np.any(result.image != pristine, axis=2)
    # Box edges at x = 40 and 120, y = 30 and 90; the keypoint at the centre (80, 60), in red.
    assert changed[60, 38:43].any() and changed[60, 118:123].any() and changed[28:33, 80].any()
    assert result.image[60, 80, 0] > 200 and result.image[60, 80, 1] < 60
    assert not changed[5:20, 140:155].any()  # far from everything drawn
    assert changed[100:120, 0:40].any()  # the text, near the bottom left


def test_frames_without_render_data_get_only_the_fps_counter():
    runner = CalculatorRunner("calculator: AnnotationOverlayCalculator")
    out = runner.run({"IMAGE": [(0, frame(0)), (1, frame(1)), (2, frame(2))], "RENDER_DATA": [(1, BOX)]})
    images = [p.payload.image for p in out["IMAGE"]]
    assert len(images) == 3
    centre = [bool(np.any(img[55:65, 75:85] != 100)) for img in images]
    assert centre == [False, True, False]
    assert not np.any(images[0] != 100)  # the first frame has no fps yet
    assert np.any(images[2][-20:, :60] != 100)  # the counter, bottom left


def test_several_render_data_streams():
    from pipelines import Graph

    graph = Graph.from_string("""
        inputs: [video, boxes, more]
        outputs: [annotated]
        nodes:
          - calculator: AnnotationOverlayCalculator
            inputs: {IMAGE: video, RENDER_DATA: [boxes, more]}
            outputs: {IMAGE: annotated}
            options: {show_fps: false}
    """)
    other = RenderData(points=(((0.1, 0.1), (0, 0, 255)),))
    out = graph.run({"video": [frame()], "boxes": [BOX], "more": [other]}, outputs=["annotated"])
    image = out["annotated"][0].payload.image
    assert image[12, 16, 2] > 200 and np.any(image[60, 38:43] != 100)
