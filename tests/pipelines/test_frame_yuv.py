"""Frames made from the decoder's yuv420p planes: RGB on first read, once, and close to what PyAV gave before."""
import dataclasses
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest

from pipelines.types import Frame

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
