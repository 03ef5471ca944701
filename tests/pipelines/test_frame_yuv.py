"""Frames made from the decoder's yuv420p planes: RGB on first read, once, by their colour encoding, and close to
what PyAV gave before."""
import copy
import dataclasses
import os
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest

from pipelines.shared_frames import SharedReader, SharedWriter
from pipelines.types import Frame
from pipelines.yuv import BT601, BT601_FULL, BT709, BT709_FULL, YuvEncoding

av = pytest.importorskip("av", reason="needs OpenCV and PyAV (pip install 'framegraph[video]')")
cv2 = pytest.importorskip("cv2", reason="needs OpenCV and PyAV (pip install 'framegraph[video]')")

MEDIA = Path(__file__).resolve().parents[2] / "assets" / "media"


def _decoded(path: Path, count: int):
    with av.open(str(path)) as container:
        for i, picture in enumerate(container.decode(video=0)):
            if i == count:
                return
            yield picture


@pytest.mark.parametrize("clip", ["astronaut_pan.mp4", "cup_hands.mp4", "grace_hopper_pan.mp4"])
def test_rgb_from_planes_matches_pyav_rgb24(clip):
    # The tolerance the source's switch to planes allows: OpenCV's BT.601 limited-range I420 conversion against
    # swscale's (what `to_ndarray(format="rgb24")` did before). Same coefficients; OpenCV repeats each chroma
    # sample over its 2x2 pixels where swscale interpolates, so only sharp colour edges differ by more than 2.
    worst, means, tails = np.zeros(3), [], []
    for picture in _decoded(MEDIA / clip, 10):
        assert picture.format.name == "yuv420p"
        frame = Frame.from_yuv420p(picture.to_ndarray(), source=clip)
        assert (frame.width, frame.height) == (picture.width, picture.height)
        diff = np.abs(frame.image.astype(np.int16) - picture.to_ndarray(format="rgb24"))
        worst = np.maximum(worst, diff.reshape(-1, 3).max(axis=0))
        means.append(diff.mean(axis=(0, 1)))
        tails.append(np.percentile(diff, 99.9))
    assert np.all(np.mean(means, axis=0) < 2.0), np.mean(means, axis=0)  # measured 0.9-1.6 per channel
    assert max(tails) <= 4, tails  # measured 2-3
    assert np.all(worst <= 24), worst  # measured up to 19 (red, at grace_hopper's edges)


def test_rgb_frames_unchanged():
    rgb = np.zeros((4, 6, 3), np.uint8)
    frame = Frame(rgb, index=2, source="x")
    assert frame.image is rgb and frame.yuv420p is None and frame.yuv420p_planes() is None
    assert (frame.width, frame.height) == (6, 4)
    with pytest.raises(ValueError, match="HxWx3 uint8 RGB"):
        Frame(np.zeros((4, 6), np.uint8))
    with pytest.raises(ValueError, match="HxWx3 uint8 RGB"):
        Frame()
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.image = rgb


def test_planes_are_converted_once_and_shared_between_threads(monkeypatch):
    y, u, v = np.full((4, 6), 81, np.uint8), np.full((2, 3), 90, np.uint8), np.full((2, 3), 240, np.uint8)
    frame = Frame.from_yuv420p(np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(6, 6), fps=25.0)
    planes = frame.yuv420p_planes()
    assert [p.tolist() for p in planes] == [y.tolist(), u.tolist(), v.tolist()]
    calls = []
    real = cv2.cvtColor
    monkeypatch.setattr(cv2, "cvtColor", lambda *a: calls.append(1) or real(*a))
    assert (frame.width, frame.height) == (6, 4) and not calls  # sizes come from the planes
    seen, start = [], threading.Barrier(8)

    def read():
        start.wait()
        seen.append(frame.image)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and all(image is seen[0] for image in seen)
    assert seen[0].shape == (4, 6, 3) and tuple(seen[0][0, 0]) == pytest.approx((255, 0, 0), abs=2)  # BT.601 red


def test_a_changed_frame_drops_its_planes_and_copies_keep_them():
    frame = Frame.from_yuv420p(np.full((6, 4), 128, np.uint8), index=3, source="clip.mp4")
    changed = dataclasses.replace(frame, image=np.ones((4, 4, 3), np.uint8))
    assert changed.yuv420p is None and changed.image.max() == 1 and changed.index == 3
    moved = dataclasses.replace(frame, index=4)  # holds the RGB: made from every field, image included
    assert moved.yuv420p is None and moved.image.shape == (4, 4, 3)
    copied = pickle.loads(pickle.dumps(frame))  # the process executor's way; the lock is not pickled
    assert np.array_equal(copied.yuv420p, frame.yuv420p) and copied.source == "clip.mp4"
    assert np.array_equal(copied.image, frame.image)
    assert "yuv420p" in repr(frame) and "4x4" in repr(frame)


def test_bad_planes_are_refused():
    with pytest.raises(ValueError, match="I420"):
        Frame.from_yuv420p(np.zeros((5, 4), np.uint8))  # not H * 3 / 2 rows
    with pytest.raises(ValueError, match="I420"):
        Frame.from_yuv420p(np.zeros((6, 8), np.uint8)[:, ::2])  # not contiguous
    with pytest.raises(ValueError, match="not both"):
        Frame(np.zeros((4, 4, 3), np.uint8), i420=np.zeros((6, 4), np.uint8))


# Primaries, secondaries, greys: what a misread matrix or range shifts most.
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255), (255, 255, 255),
           (0, 0, 0), (128, 128, 128), (200, 80, 30)]


@pytest.mark.parametrize("encoding", [BT601, BT709, BT601_FULL, BT709_FULL], ids=str)
def test_rgb_from_planes_uses_their_encoding(encoding):
    rgb = np.concatenate([np.full((2, 2, 3), c, np.uint8) for c in COLOURS], axis=1)  # 2x2 blocks: no chroma edge
    picture = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="yuv420p", dst_colorspace="ITU709" if encoding.matrix == "bt709" else "ITU601",
        dst_color_range=encoding.av_color_range)  # swscale's planes of those colours, independently of ours
    frame = Frame.from_yuv420p(picture.to_ndarray(), encoding=encoding)
    assert frame.yuv420p_encoding == encoding
    # Measured: within 1-2 levels (8-bit rounding of Y, U and V); another encoding's coefficients miss by 13-53.
    assert np.abs(frame.image.astype(np.int16) - rgb).max() <= 2, (encoding, frame.image[0], rgb[0])
    others = [e for e in (BT601, BT709, BT601_FULL, BT709_FULL) if e != encoding]
    for other in others:
        misread = Frame.from_yuv420p(picture.to_ndarray(), encoding=other).image
        assert np.abs(misread.astype(np.int16) - rgb).max() >= 5, (encoding, other)


def test_bt601_limited_planes_still_convert_with_opencv_exactly():
    with av.open(str(MEDIA / "astronaut_pan.mp4")) as container:
        i420 = next(container.decode(video=0)).to_ndarray()
    expected = cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
    assert np.array_equal(Frame.from_yuv420p(i420).image, expected)  # no encoding given: BT.601 limited
    assert np.array_equal(Frame.from_yuv420p(i420, encoding=BT601).image, expected)
    assert Frame.from_yuv420p(i420).yuv420p_encoding == BT601


def test_the_encoding_survives_pickling_shared_memory_and_redrawing():
    i420 = np.random.default_rng(3).integers(16, 236, (72, 64), dtype=np.uint8)
    frame = Frame.from_yuv420p(i420, encoding=BT709_FULL, index=5, source="phone.mp4", fps=30.0)
    assert "yuv420p bt709-full" in repr(frame)
    copied = pickle.loads(pickle.dumps(frame))  # the process executor's way
    assert copied.yuv420p_encoding == BT709_FULL and np.array_equal(copied.yuv420p, i420) and copied.index == 5
    assert copy.copy(frame).yuv420p_encoding == BT709_FULL
    writer, reader = SharedWriter(f"fgtest_{os.getpid()}"), SharedReader()
    try:  # between processes: arrays through shared memory, the rest pickled
        shared = reader.decode(writer.encode(frame))
    finally:
        reader.close()
        writer.close()
    assert shared.yuv420p_encoding == BT709_FULL and np.array_equal(shared.yuv420p, i420)
    assert np.array_equal(shared.image, frame.image)
    # A node that draws on a copy of the planes keeps their encoding, and every other field.
    drawn = frame.with_planes(i420.copy())
    assert drawn.yuv420p_encoding == BT709_FULL and drawn.__dict__["_rgb"] is None
    assert (drawn.index, drawn.source, drawn.fps) == (5, "phone.mp4", 30.0)
    assert Frame(np.zeros((48, 64, 3), np.uint8)).with_planes(i420).yuv420p_encoding == BT601
    # New pixels in RGB: no planes, no encoding.
    assert dataclasses.replace(frame, image=np.zeros((48, 64, 3), np.uint8)).yuv420p_encoding is None


def test_frames_pickled_before_encodings_read_as_bt601_limited():
    frame = Frame.from_yuv420p(np.full((6, 4), 128, np.uint8))
    state = frame.__getstate__()
    del state["_encoding"]  # what an older framegraph pickled
    old = Frame.__new__(Frame)
    old.__setstate__(state)
    assert old.yuv420p_encoding == BT601 and old.image.shape == (4, 4, 3)


def test_an_encoding_needs_planes_and_is_checked():
    with pytest.raises(ValueError, match="encoding describes i420 planes"):
        Frame(np.zeros((4, 4, 3), np.uint8), encoding=BT709)
    with pytest.raises(ValueError, match="expected a pipelines.yuv.YuvEncoding"):
        Frame.from_yuv420p(np.zeros((6, 4), np.uint8), encoding="bt709")
    with pytest.raises(ValueError, match="matrix: expected one of bt601, bt709"):
        YuvEncoding("bt2020")
    assert [str(e) for e in (BT601, BT709, BT601_FULL, BT709_FULL)] == ["bt601", "bt709", "bt601-full",
                                                                           "bt709-full"]
