"""graphs/face_blur.yaml: a face stays hidden on frames where the detector misses it ("never blinks"), the
graph validates, and --source also names the file the audio comes from."""
from dataclasses import dataclass
from pathlib import Path

import media
import numpy as np
import pytest
import yaml

from pipelines import Calculator, Graph, Input, Output, load_graph, register_calculator
from pipelines.registry import unregister_calculator
from pipelines.types import Detections

cv2 = pytest.importorskip("cv2")

GRAPHS = Path(media.REPO_ROOT) / "graphs"
DROP_FROM_US, DROP_TO_US = 1_200_000, 1_680_000  # frames 30..41 of the 25 fps sample clip


class DropDetectionsForTest(Calculator):
    """Passes detections on, except in [from_us, to_us): there nothing (the detector did not run) or, with
    `empty`, an empty Detections (it ran and missed)."""

    @dataclass(frozen=True)
    class Options:
        from_us: int = 0
        to_us: int = 0
        empty: bool = False

    DETECTIONS = Input[Detections]("DETECTIONS")
    OUT = Output[Detections]("DETECTIONS")

    def process(self, ctx):
        if not self.options.from_us <= ctx.timestamp < self.options.to_us:
            ctx.send(self.OUT, ctx.get(self.DETECTIONS))
        elif self.options.empty:
            ctx.send(self.OUT, Detections.empty(6))


@pytest.fixture
def dropper():
    register_calculator(DropDetectionsForTest, replace=True)
    yield "DropDetectionsForTest"
    unregister_calculator("DropDetectionsForTest")


def graph_with_misses(empty: bool, tracks: bool = True) -> str:
    """face_blur.yaml with the detector's output cut between the detector and its consumers."""
    config = yaml.safe_load((GRAPHS / "face_blur.yaml").read_text())
    nodes = config["nodes"]
    by_name = {n.get("name"): n for n in nodes}
    by_name["face_detection"]["outputs"] = {"DETECTIONS": "raw_face_detections"}
    by_name["display"]["enabled"] = False
    if not tracks:  # the control: what the output would be without the tracker
        del by_name["anonymize"]["inputs"]["TRACKS"]
    nodes.insert(nodes.index(by_name["face_detection"]) + 1, {
        "calculator": "DropDetectionsForTest", "name": "drop",
        "inputs": {"DETECTIONS": "raw_face_detections"}, "outputs": {"DETECTIONS": "face_detections"},
        "options": {"from_us": DROP_FROM_US, "to_us": DROP_TO_US, "empty": empty}})
    return yaml.safe_dump(config, sort_keys=False)


def run_with_misses(empty: bool, tracks: bool = True):
    clip = media.require(media.astronaut_pan_clip)
    graph = Graph.from_string(graph_with_misses(empty, tracks), base_dir=GRAPHS,
                              overrides=[f"source.source={clip}"])
    streams = ("throttled_video", "anonymized_video", "raw_face_detections")
    handle = graph.start(outputs=streams)
    assert handle.wait(120)
    return [{p.timestamp: p.payload for p in handle.outputs(s)} for s in streams]


def face_change(original: np.ndarray, anonymized: np.ndarray, box) -> tuple[float, float]:
    """How much the face region changed: mean absolute difference, and the detail (variance of the Laplacian)
    left, as a fraction of the original's."""
    x1, y1, x2, y2 = np.round(box).astype(int)
    a = original[max(y1, 0):y2, max(x1, 0):x2]
    b = anonymized[max(y1, 0):y2, max(x1, 0):x2]
    diff = float(np.abs(a.astype(np.int16) - b).mean())
    detail = [cv2.Laplacian(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() for x in (a, b)]
    return diff, detail[1] / detail[0]


@pytest.mark.slow
@pytest.mark.onnxruntime
@pytest.mark.parametrize("empty", [False, True], ids=["detector-skipped", "detector-missed"])
def test_the_face_stays_hidden_on_frames_the_detector_misses(dropper, empty):
    pytest.importorskip("onnxruntime")
    originals, anonymized, raw = run_with_misses(empty)
    assert len(anonymized) == len(originals) == 90
    dropped = [ts for ts in originals if DROP_FROM_US <= ts < DROP_TO_US]
    assert len(dropped) == 12
    for ts in sorted(originals):
        faces = raw[ts].to_pixels(320, 240)
        assert len(faces) >= 1, f"the sample clip should show the face at {ts} us"
        diff, detail = face_change(originals[ts].image, anonymized[ts].image, faces.xyxy[0])
        assert diff > 10 and detail < 0.1, (f"face visible at {ts} us ({'dropped' if ts in dropped else 'detected'}"
                                            f"): mean difference {diff:.1f}, detail left {detail:.0%}")


@pytest.mark.slow
@pytest.mark.onnxruntime
def test_without_tracks_the_face_would_blink(dropper):
    """The control: the misses above are real, and only TRACKS bridges them."""
    pytest.importorskip("onnxruntime")
    originals, anonymized, raw = run_with_misses(empty=True, tracks=False)
    for ts in (ts for ts in originals if DROP_FROM_US <= ts < DROP_TO_US):
        box = raw[ts].to_pixels(320, 240).xyxy[0]
        assert face_change(originals[ts].image, anonymized[ts].image, box) == (0.0, 1.0)


def test_the_graph_validates_and_source_also_sets_the_audio_file():
    pytest.importorskip("onnxruntime")
    from pipelines import apply_overrides, flag_overrides

    config = load_graph(GRAPHS / "face_blur.yaml")
    assert config.cli["source"] == ["source.source", "video_writer.audio_from"]
    apply_overrides(config, flag_overrides(config, "source", "talk.mkv")
                    + flag_overrides(config, "output", "o.mp4", enable=True))
    writer = config.node("video_writer")
    assert writer.enabled and writer.options["audio_from"] == "talk.mkv" and writer.options["path"] == "o.mp4"
    assert config.node("source").options["source"] == "talk.mkv"
    Graph(load_graph(GRAPHS / "face_blur.yaml"))  # validates: every stream, port type and option
