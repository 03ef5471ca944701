"""The writer encodes a frame that still holds the decoder's planes from them: no RGB, no conversion."""
import numpy as np
import pytest

from pipelines.testing import CalculatorRunner
from pipelines.types import Frame

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")


def _planes(count: int, width: int = 64, height: int = 48):
    rng = np.random.default_rng(7)
    return [rng.integers(16, 236, (height * 3 // 2, width), dtype=np.uint8) for _ in range(count)]


def _decoded_planes(path):
    with av.open(str(path)) as container:
        return [p.to_ndarray() for p in container.decode(video=0)]


def test_planes_are_encoded_as_they_are(tmp_path):
    out = tmp_path / "planes.mp4"
    planes = _planes(5)
    frames = [Frame.from_yuv420p(p, index=i, fps=25.0) for i, p in enumerate(planes)]
    # crf 0 is lossless in x264: what comes back out of the file is exactly what went in.
    CalculatorRunner(f"calculator: VideoWriterCalculator\noptions: {{path: '{out}', crf: 0}}").run({"IMAGE": frames})
    assert all(np.array_equal(a, b) for a, b in zip(_decoded_planes(out), planes, strict=True))
    assert all(f.__dict__["_rgb"] is None for f in frames)  # no frame was converted to RGB on the way


def test_rgb_frames_are_converted_once_with_opencvs_i420(tmp_path):
    out = tmp_path / "rgb.mp4"
    rgb = [cv2.cvtColor(p, cv2.COLOR_YUV2RGB_I420) for p in _planes(3)]
    CalculatorRunner(f"calculator: VideoWriterCalculator\noptions: {{path: '{out}', crf: 0}}").run(
        {"IMAGE": [Frame(image, index=i, fps=25.0) for i, image in enumerate(rgb)]})
    expected = [cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420) for image in rgb]
    assert all(np.array_equal(a, b) for a, b in zip(_decoded_planes(out), expected, strict=True))
