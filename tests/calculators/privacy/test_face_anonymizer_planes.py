"""AnonymizeRegionsCalculator on frames holding the decoder's planes: hidden in Y, U and V as hiding in RGB would,
never converted, the encoding kept; and face_blur keeping a BT.709 video's planes from the source to the file."""
import subprocess
import sys

import numpy as np
import pytest

import media
from calculators.privacy.face_anonymizer import _hide
from pipelines.testing import CalculatorRunner
from pipelines.types import Detections, Frame
from pipelines.yuv import BT601, BT709, BT709_FULL, i420_to_rgb, rgb_to_i420
from tiny_media import make_tagged_clip

cv2 = pytest.importorskip("cv2")
av = pytest.importorskip("av")

H, W = 240, 320
BOXES = ((0.30, 0.25, 0.55, 0.65), (0.70, 0.10, 0.90, 0.30))  # relative xyxy


def picture() -> np.ndarray:
    """Smooth colours with some detail, as a face and its surroundings have (noise would be all chroma edges)."""
    rng = np.random.default_rng(3)
    coarse = cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (W, H), interpolation=cv2.INTER_CUBIC)
    fine = rng.integers(-20, 21, (H, W, 1))
    return np.clip(coarse.astype(int) + fine, 0, 255).astype(np.uint8)


def hide(frame: Frame, mode: str, boxes=BOXES) -> Frame:
    runner = CalculatorRunner(f"calculator: AnonymizeRegionsCalculator\noptions: {{mode: {mode}, color: [250, 30, 60]}}")
    detections = Detections(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.9, np.float32))
    [out] = runner.run({"IMAGE": [(0, frame)], "DETECTIONS": [(0, detections)]})["IMAGE"]
    return out.payload


@pytest.mark.parametrize("encoding", [BT601, BT709, BT709_FULL], ids=str)
@pytest.mark.parametrize("mode", ["blur", "pixelate", "fill"])
def test_planes_are_hidden_as_in_rgb_and_stay_planes_in_their_encoding(mode, encoding):
    i420 = rgb_to_i420(picture(), encoding)
    frame = Frame.from_yuv420p(i420.copy(), encoding=encoding, index=3)
    before = frame.image  # the frame's own RGB: what the RGB path would hide regions of
    out = hide(Frame.from_yuv420p(i420.copy(), encoding=encoding, index=3), mode)

    assert out.yuv420p is not None and out.yuv420p_encoding == encoding, "converted to RGB, or the encoding lost"
    assert out.index == 3
    pixel_boxes = np.array(BOXES) * [W, H, W, H]
    # Hidden in RGB over the same regions (grown to even pixels, as the planes' are), then written as the RGB path
    # has it written: to I420 in this encoding (chroma at half size), and back.
    hidden_rgb = before.copy()
    _hide(hidden_rgb, pixel_boxes, mode, "ellipse", 0.2, 1.0, (250, 30, 60), snap=True)
    expected = i420_to_rgb(rgb_to_i420(hidden_rgb, encoding), encoding)
    hidden = np.any(hidden_rgb != before, axis=2)
    assert hidden.mean() > 0.1, "the test's boxes hide nothing"
    diff = np.abs(out.image.astype(int) - expected.astype(int))
    # Inside: within rounding, and the chroma's half resolution where blocks and ellipses end. Measured: BT.601
    # mean 0.5-1.0, 95th percentile 0-2; BT.709 (whose reference went through swscale, which filters chroma across
    # edges where the planes keep them hard) mean 1.2-2.9, 95th percentile 0-11.
    mean, p95 = diff[hidden].mean(), np.percentile(diff[hidden], 95)
    max_mean, max_p95 = (1.5, 3) if encoding == BT601 else (3.5, 12)
    assert mean <= max_mean and p95 <= max_p95, (mean, p95)
    # Away from the hidden regions (2 pixels: one chroma sample), exactly the input's pixels.
    near = cv2.dilate(hidden.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert np.array_equal(out.image[~near], before[~near])


def test_fill_paints_the_colour_in_the_planes_encoding():
    for encoding in (BT601, BT709, BT709_FULL):
        frame = Frame.from_yuv420p(rgb_to_i420(picture(), encoding), encoding=encoding)
        out = hide(frame, "fill", boxes=((0.2, 0.2, 0.8, 0.8),))
        centre = out.image[100:140, 140:180].reshape(-1, 3).astype(int)
        assert np.abs(centre - [250, 30, 60]).max() <= 3, (str(encoding), centre.min(0), centre.max(0))


def test_input_planes_are_left_as_they_were_and_a_frame_without_boxes_is_sent_as_it_is():
    i420 = rgb_to_i420(picture(), BT709)
    frame = Frame.from_yuv420p(i420.copy(), encoding=BT709)
    hide(frame, "blur")
    assert np.array_equal(frame.yuv420p, i420)
    assert hide(frame, "blur", boxes=()) is frame


@pytest.mark.slow
def test_face_blur_keeps_a_bt709_videos_planes_to_the_file(tmp_path):
    image = cv2.cvtColor(cv2.imread(str(media.require(media.grace_hopper_image))), cv2.COLOR_BGR2RGB)
    face = np.ascontiguousarray(cv2.resize(image, (256, 300), interpolation=cv2.INTER_AREA)[:, :, :])
    clip = make_tagged_clip(tmp_path / "bt709.mp4", "bt709", [face] * 4)
    out = tmp_path / "blurred.mp4"
    # In a process of its own: the command line sets up logging for the process it runs in.
    run = subprocess.run([sys.executable, "-m", "pipelines", "face_blur", "--source", str(clip), "--output", str(out),
                          "--no-display", "--quiet"], capture_output=True, text=True, timeout=120, cwd=media.REPO_ROOT)
    assert run.returncode == 0, run.stderr
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        pictures = list(container.decode(stream))
        # An RGB frame would have started the writer in BT.601: the planes came through from source to file.
        assert (stream.codec_context.colorspace, pictures[0].colorspace) == (1, 1)
        blurred = pictures[-1].to_ndarray(format="rgb24")
    with av.open(str(clip)) as container:
        original = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert len(pictures) == 4
    face_rows, face_cols = slice(60, 160), slice(80, 180)  # Grace Hopper's face at this size
    change = np.abs(blurred[face_rows, face_cols].astype(int) - original[face_rows, face_cols]).mean()
    corner = np.abs(blurred[-20:, :20].astype(int) - original[-20:, :20]).mean()
    assert change > 8 and corner < 3, (change, corner)
