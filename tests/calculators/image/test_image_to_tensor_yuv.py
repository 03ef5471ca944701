"""ImageToTensorCalculator on frames holding yuv420p planes, in any encoding: the same tensor as from their RGB,
within rounding."""
import numpy as np
import pytest

from pipelines.types import Frame, NormalizedRect

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")

from calculators.image.image_to_tensor import ImageToTensorCalculator  # noqa: E402
from calculators.image.yuv_warp import yuv_to_rgb_matrix  # noqa: E402
from media import astronaut_pan_clip, require  # noqa: E402
from pipelines.yuv import BT601, BT601_FULL, BT709, BT709_FULL, rgb_to_i420  # noqa: E402


class _Ctx:
    """Just enough of a context for one process() call: inputs by port, outputs collected."""

    def __init__(self, inputs):
        self.inputs, self.sent = inputs, {}

    def get(self, port):
        return self.inputs.get(port.tag)

    def send(self, port, value, **_):
        self.sent[port.tag] = value


def _tensor(frame, rect=None, **options):
    node = ImageToTensorCalculator.__new__(ImageToTensorCalculator)
    node.options = ImageToTensorCalculator.Options(**options)
    node.open(None)
    ctx = _Ctx({"IMAGE": frame, "NORM_RECT": rect})
    node.process(ctx)
    return ctx.sent["TENSORS"][0][0], ctx.sent


def _frames(count=5):
    with av.open(str(require(astronaut_pan_clip))) as container:
        for _, picture in zip(range(count), container.decode(video=0)):
            i420 = picture.to_ndarray()
            planes = Frame.from_yuv420p(i420)
            yield planes, Frame(cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420))


@pytest.mark.parametrize("options, rect", [
    ({"output_width": 128, "output_height": 128}, None),  # the face detector's letterbox (zero border)
    ({"output_width": 256, "output_height": 256, "border": "replicate"},
     NormalizedRect(0.45, 0.5, 0.4, 0.5, rotation=0.6)),  # a rotated landmark crop, partly off the frame
])
def test_planes_give_the_rgb_tensor(options, rect):
    for planes, rgb in _frames():
        ours, sent = _tensor(planes, rect, **options)
        theirs, sent_rgb = _tensor(rgb, rect, **options)
        assert sent["LETTERBOX_PADDING"] == sent_rgb["LETTERBOX_PADDING"]
        diff = np.abs(ours - theirs) * 127.5  # float_range [-1, 1]: back to 0..255 levels
        # Measured: mean 0.5 levels, 99th percentile 6 (up to 9 on grace_hopper's sharp red edges, single pixels
        # up to 35): chroma is interpolated from its own plane here, repeated over 2x2 pixels in frame.image.
        assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 10, (diff.mean(), np.percentile(diff, 99))
        assert planes.__dict__["_rgb"] is None  # the full-frame RGB was never made


def test_zero_border_is_black_from_planes():
    i420 = np.full((96, 128), 128, np.uint8)  # a wide frame, letterboxed top and bottom: grey Y 200, neutral chroma
    i420[:64] = 200
    frame = Frame.from_yuv420p(i420)
    tensor, sent = _tensor(frame, output_width=64, output_height=64)
    assert sent["LETTERBOX_PADDING"].top == pytest.approx(0.25)  # 128x64 into 64x64
    assert np.all(tensor[:15] == -1.0) and np.all(tensor[-15:] == -1.0)
    assert np.allclose(tensor[20:44], (200 - 16) * 255 / 219 / 127.5 - 1, atol=0.01)  # limited range grey


def _tagged_frames(encoding, count=3):
    # The bundled clip's pictures (a face, natural colours) as a camera in `encoding` would have them.
    with av.open(str(require(astronaut_pan_clip))) as container:
        for _, picture in zip(range(count), container.decode(video=0)):
            yield Frame.from_yuv420p(rgb_to_i420(picture.to_ndarray(format="rgb24"), encoding), encoding=encoding)


@pytest.mark.parametrize("encoding", [BT709, BT709_FULL, BT601_FULL], ids=str)
@pytest.mark.parametrize("options, rect", [
    ({"output_width": 128, "output_height": 128}, None),
    ({"output_width": 256, "output_height": 256, "border": "replicate"},
     NormalizedRect(0.45, 0.5, 0.4, 0.5, rotation=0.6)),
])
def test_planes_in_other_encodings_give_the_rgb_tensor(encoding, options, rect):
    for planes in _tagged_frames(encoding):
        ours, _ = _tensor(planes, rect, **options)
        theirs, _ = _tensor(Frame(planes.image), rect, **options)  # warping frame.image (swscale's RGB)
        diff = np.abs(ours - theirs) * 127.5
        # Measured: mean 0.7-1.2 levels, 99th percentile 4-6 (single pixels up to 27 at sharp edges). A little more
        # than BT.601's 0.5: frame.image is swscale's here, about 1 level darker than the standard's equations
        # computed exactly. Read as BT.601 limited, the mean would be 1.4-9 levels (see the next test for colours).
        assert diff.mean() < 1.5 and np.percentile(diff, 99) <= 6, (diff.mean(), np.percentile(diff, 99))


@pytest.mark.parametrize("encoding", [BT601, BT709, BT709_FULL, BT601_FULL], ids=str)
def test_colours_from_planes_use_their_encoding(encoding):
    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)]  # unsaturated: a misread range shows
    rgb = np.concatenate([np.full((64, 32, 3), c, np.uint8) for c in colours], axis=1)  # four 32-pixel stripes
    frame = Frame.from_yuv420p(rgb_to_i420(rgb, encoding), encoding=encoding)
    tensor, _ = _tensor(frame, output_width=128, output_height=64, keep_aspect_ratio=False)
    centres = (tensor[32, 16::32] + 1) * 127.5  # the middle of each stripe, back to 0..255
    # Measured within 1-2 levels; with another encoding's coefficients, off by 12-44.
    assert np.abs(centres - np.array(colours)).max() <= 3, (encoding, centres.round(1))


@pytest.mark.parametrize("encoding, grey", [(BT709, (200 - 16) * 255 / 219), (BT709_FULL, 200),
                                            (BT601_FULL, 200)], ids=str)
def test_zero_border_is_black_in_every_encoding(encoding, grey):
    i420 = np.full((96, 128), 128, np.uint8)  # Y 200, neutral chroma, letterboxed top and bottom
    i420[:64] = 200
    tensor, _ = _tensor(Frame.from_yuv420p(i420, encoding=encoding), output_width=64, output_height=64)
    assert np.all(tensor[:15] == -1.0) and np.all(tensor[-15:] == -1.0)  # RGB (0, 0, 0): Y 0 in full range
    assert np.allclose(tensor[20:44], grey / 127.5 - 1, atol=0.01)


def test_bt601_limited_keeps_opencvs_coefficients():
    # OpenCV's COLOR_YUV2RGB_I420 fixed-point constants / 2**20: the tensors of BT.601 clips do not change.
    cy, cvr, cvg, cug, cub = 1220542 / 2**20, 1673527 / 2**20, -852492 / 2**20, -409993 / 2**20, 2116026 / 2**20
    matrix = np.array([[cy, 0.0, cvr], [cy, cug, cvg], [cy, cub, 0.0]])
    assert np.array_equal(yuv_to_rgb_matrix(BT601), np.hstack([matrix, -(matrix @ [16.0, 128.0, 128.0])[:, None]]))
