"""ImageToTensorCalculator on frames holding yuv420p planes: the same tensor as from their RGB, within rounding."""
import numpy as np
import pytest

from pipelines.types import Frame, NormalizedRect

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")

from calculators.image.image_to_tensor import ImageToTensorCalculator  # noqa: E402
from media import astronaut_pan_clip, require  # noqa: E402


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
