"""AnonymizeRegionsCalculator: what it covers (and what it leaves alone), its modes, and that a blurred face is no
longer a face to the detector that found it."""
import media
import numpy as np
import pytest

from pipelines import Graph, GraphValidationError
from pipelines.testing import CalculatorRunner
from pipelines.types import Detections, Frame, Tracks

cv2 = pytest.importorskip("cv2")

H, W = 240, 320
BOX = (0.4, 0.4, 0.6, 0.6)  # relative; in pixels x 128..192, y 96..144


def noise(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def dets(*boxes, relative: bool = True) -> Detections:
    xyxy = np.array(boxes, np.float32).reshape(-1, 4)
    return Detections(xyxy, np.full(len(xyxy), 0.9, np.float32), relative=relative)


def tracks(boxes, lost_frames, confirmed=None) -> Tracks:
    n = len(boxes)
    lost = np.array(lost_frames, np.int32)
    return Tracks(np.arange(1, n + 1, dtype=np.int64), np.array(boxes, np.float32).reshape(-1, 4),
                  np.full(n, 0.9, np.float32), lost == 0, lost,
                  np.array(confirmed if confirmed is not None else [True] * n, bool))


def run(image: np.ndarray, options: str = "{}", **streams) -> list:
    runner = CalculatorRunner(f"calculator: AnonymizeRegionsCalculator\noptions: {options}")
    inputs = {"IMAGE": [(0, Frame(image, index=7, source="x.mp4", fps=25.0))]}
    inputs.update({tag.upper(): [(0, value)] for tag, value in streams.items()})
    return [p.payload for p in runner.run(inputs)["IMAGE"]]


def pixels(box, pad: float = 0.0) -> tuple[slice, slice]:
    """Rows and columns of a relative box grown (pad > 0) or shrunk (pad < 0) by `pad` pixels per side."""
    x1, y1, x2, y2 = np.array(box) * [W, H, W, H]
    return slice(int(np.ceil(y1 - pad)), int(y2 + pad)), slice(int(np.ceil(x1 - pad)), int(x2 + pad))


def outside(out: np.ndarray, image: np.ndarray, box, margin: float) -> bool:
    """Every pixel further than `margin` from the box is unchanged."""
    ys, xs = pixels(box, margin)
    a, b = out.copy(), image.copy()
    a[max(ys.start, 0):ys.stop, max(xs.start, 0):xs.stop] = 0
    b[max(ys.start, 0):ys.stop, max(xs.start, 0):xs.stop] = 0
    return np.array_equal(a, b)


def test_blur_covers_the_padded_box_and_nothing_far_from_it():
    image = noise()
    original = image.copy()
    [out] = run(image, DETECTIONS=dets(BOX))
    assert np.array_equal(image, original), "the input frame was modified"
    assert out.image is not image and (out.index, out.source, out.fps) == (7, "x.mp4", 25.0)
    # The box loses its noise, and so does its padding (0.2 x 64 = 12.8 px left and right, 0.2 x 48 = 9.6 px
    # above and below): bands across the centre reaching 10 and 8 px beyond the box.
    for region in (pixels(BOX), (slice(112, 128), slice(118, 202)), (slice(88, 152), slice(152, 168))):
        assert out.image[region].std() < 0.2 * original[region].std()
    assert outside(out.image, image, BOX, 25)


def test_every_track_is_covered_lost_and_unconfirmed_ones_too_unless_max_lost_says():
    near, lost = (0.1, 0.1, 0.25, 0.3), (0.6, 0.5, 0.8, 0.8)
    t = tracks([near, lost], lost_frames=[0, 5], confirmed=[True, False])
    image = noise()
    [out] = run(image, TRACKS=t)
    for box in (near, lost):
        assert out.image[pixels(box)].std() < 0.3 * image[pixels(box)].std()
    [out] = run(image, "{max_lost: 2}", TRACKS=t)
    assert out.image[pixels(near)].std() < 0.3 * image[pixels(near)].std()
    assert np.array_equal(out.image[pixels(lost, 20)], image[pixels(lost, 20)]), "a track lost 5 runs was covered"


def test_a_lost_track_grows_with_every_missed_run():
    image = noise()
    t = tracks([BOX], lost_frames=[10])
    [out] = run(image, "{mode: fill, shape: rect, padding: 0.0, lost_padding: 0.025}", TRACKS=t)
    # 10 runs x 0.025 = 0.25 per side: 64x48 px grows by 16 and 12 px, as padding 0.25 does.
    assert (out.image[84:156, 112:208] == 0).all()
    assert outside(out.image, image, BOX, 17)
    [out] = run(image, "{mode: fill, shape: rect, padding: 0.0, lost_padding: 0.0}", TRACKS=t)
    assert outside(out.image, image, BOX, 1)


def test_tracks_and_detections_together_and_in_pixels():
    image = noise()
    [out] = run(image, TRACKS=tracks([(0.05, 0.05, 0.2, 0.25)], [0]),
                DETECTIONS=dets((200, 120, 280, 200), relative=False))
    assert out.image[pixels((0.05, 0.05, 0.2, 0.25))].std() < 40
    assert out.image[140:180, 220:260].std() < 40


@pytest.mark.parametrize("padding", [0.0, 0.2])
def test_fill_ellipse_always_holds_the_whole_box(padding):
    image = noise()
    [out] = run(image, f"{{mode: fill, color: [255, 0, 255], padding: {padding}}}", DETECTIONS=dets(BOX))
    # An ellipse inside the box would leave its corners (forehead, chin) showing.
    region = out.image[pixels(BOX, -1)]
    assert (region == [255, 0, 255]).all()
    assert outside(out.image, image, BOX, 25)


def test_fill_rect_covers_the_padded_rectangle_exactly():
    image = noise()
    [out] = run(image, "{mode: fill, shape: rect, padding: 0.25, color: [0, 0, 0]}", DETECTIONS=dets(BOX))
    # 64x48 px box grown by 16 and 12 px per side: x 112..208, y 84..156.
    assert (out.image[84:156, 112:208] == 0).all()
    assert outside(out.image, image, BOX, 17)


def test_pixelate_leaves_blocks_of_one_colour():
    image = noise()
    [out] = run(image, "{mode: pixelate}", DETECTIONS=dets(BOX))
    region = out.image[pixels(BOX, -2)]
    same = (region[:, 1:] == region[:, :-1]).all(axis=2).mean()
    assert same > 0.8, f"only {same:.0%} of neighbours share a colour"  # blocks of 48 / 5 ~ 10 px
    assert len(np.unique(region.reshape(-1, 3), axis=0)) < 120
    assert outside(out.image, image, BOX, 25)


def test_boxes_partly_or_wholly_outside_the_frame():
    image = noise()
    corner, gone = (-0.1, -0.15, 0.15, 0.2), (1.2, 1.1, 1.5, 1.6)
    [out] = run(image, DETECTIONS=dets(corner, gone))
    assert out.image[0:30, 0:30].astype(float).std() < 0.3 * image[0:30, 0:30].std()
    assert outside(out.image, image, corner, 30)
    [out] = run(image, DETECTIONS=dets(gone))
    assert np.array_equal(out.image, image)


def test_frames_without_boxes_pass_unchanged_and_absent_inputs_do_not_stall():
    images = [noise(i) for i in range(3)]
    runner = CalculatorRunner("calculator: AnonymizeRegionsCalculator")
    out = runner.run({"IMAGE": [(i, Frame(im, index=i)) for i, im in enumerate(images)],
                      "DETECTIONS": [(1, dets(BOX))], "TRACKS": [(2, Tracks.empty())]})["IMAGE"]
    assert [p.timestamp for p in out] == [0, 1, 2]
    assert np.array_equal(out[0].payload.image, images[0]) and np.array_equal(out[2].payload.image, images[2])
    assert not np.array_equal(out[1].payload.image, images[1])


def test_a_track_and_a_detection_of_one_face_become_their_union():
    from calculators.privacy.face_anonymizer import regions

    t = tracks([(10, 10, 50, 50), (200, 100, 220, 140)], [0, 1])
    t = Tracks(t.track_ids, t.xyxy, t.scores, t.matched, t.lost_frames, t.confirmed, relative=False)
    d = dets((12, 14, 54, 52), (np.nan, 0, 1, 1), (5, 5, 5, 9), relative=False)  # a duplicate, a NaN, an empty box
    boxes = regions(W, H, t, d)
    assert sorted(map(tuple, boxes.tolist())) == [(10, 10, 54, 52), (200, 100, 220, 140)]


@pytest.mark.parametrize("options, message", [
    ("{mode: blurr}", "mode must be one of blur, pixelate, fill"),
    ("{shape: circle}", "shape must be one of ellipse, rect"),
    ("{strength: 0}", "strength must be > 0"),
    ("{color: [0, 0, 300]}", "color must be three integers 0-255"),
])
def test_options_are_checked_at_load_time(options, message):
    with pytest.raises(GraphValidationError, match=message):
        Graph.from_string(f"""
inputs: [video]
nodes:
  - calculator: AnonymizeRegionsCalculator
    inputs: {{IMAGE: video}}
    outputs: {{IMAGE: out}}
    options: {options}
""")


def detect(images: list[np.ndarray], min_score: float = 0.4) -> list[Detections]:
    graph = Graph.from_string(f"""
inputs: [image]
outputs: [detections]
nodes:
  - calculator: face_detection_full_range
    inputs: {{IMAGE: image}}
    outputs: {{DETECTIONS: detections}}
    options: {{min_score_thresh: {min_score}}}
""", base_dir=media.REPO_ROOT)
    out = graph.run({"image": [Frame(im, index=i) for i, im in enumerate(images)]}, outputs=["detections"],
                    timeout=120)
    return [p.payload for p in out["detections"]]


def iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.onnxruntime
@pytest.mark.parametrize("mode", ["blur", "pixelate", "fill"])
def test_an_anonymized_face_is_no_longer_found(mode):
    pytest.importorskip("onnxruntime")
    path = media.require(media.astronaut_image)
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    [before] = detect([image])
    assert len(before) == 1 and before.scores[0] > 0.8, "the astronaut's face should be found"
    [out] = run(image, f"{{mode: {mode}}}", DETECTIONS=before)
    # At face_blur.yaml's threshold (0.4), nothing where the face was.
    [after] = detect([out.image])
    overlaps = [(float(s), iou(b, before.xyxy[0])) for b, s in zip(after.xyxy, after.scores)
                if iou(b, before.xyxy[0]) > 0.2]
    assert not overlaps, f"{mode}: the face is still found (score, IoU): {overlaps}"
