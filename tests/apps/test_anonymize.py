"""apps/anonymize.py: folders of videos (and images) in, playable anonymized files with their audio out; one
bad file reported and skipped."""
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import media
import numpy as np
import pytest

from apps.anonymize import collect, plan

av = pytest.importorskip("av")
REPO = Path(media.REPO_ROOT)
APP = REPO / "apps" / "anonymize.py"


def run_app(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(APP), *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          check=False, timeout=timeout)


def clip_with_audio(path: Path, frames: int = 40, rate: int = 44100) -> Path:
    """The sample clip's first `frames` frames (a face) with a 440 Hz tone in AAC, as a camera would record."""
    source = media.require(media.astronaut_pan_clip)
    with av.open(str(source)) as src, av.open(str(path), "w") as dst:
        video = dst.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        audio = dst.add_stream("aac", rate=rate)
        audio.layout = "mono"
        for i, frame in enumerate(src.decode(video=0)):
            if i == frames:
                break
            out = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
            out.pts, out.time_base = i, Fraction(1, 25)
            dst.mux(video.encode(out))
        dst.mux(video.encode(None))
        t = np.arange(frames * rate // 25) / rate
        pcm = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
        for start in range(0, len(pcm), 1024):
            out = av.AudioFrame.from_ndarray(pcm[None, start:start + 1024], format="s16", layout="mono")
            out.rate, out.pts, out.time_base = rate, start, Fraction(1, rate)
            dst.mux(audio.encode(out))
        dst.mux(audio.encode(None))
    return path


def inspect(path: Path) -> dict:
    """Decode everything, as a player would: frame count, size, and seconds of audio (0 without audio)."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        seconds = sum(f.samples / f.sample_rate for f in container.decode(audio=0)) if container.streams.audio else 0
    return {"frames": frames, "size": frames[0].shape[1::-1] if frames else None, "audio_seconds": seconds}


@pytest.mark.onnxruntime
@pytest.mark.slow
def test_a_folder_of_two_videos(tmp_path):
    pytest.importorskip("onnxruntime")
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "pan.mp4").write_bytes(media.require(media.astronaut_pan_clip).read_bytes())
    clip_with_audio(inputs / "talk.mp4")
    (inputs / "notes.txt").write_text("not a video")  # ignored: folders stand for their videos and images
    proc = run_app(inputs, "--out-dir", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 of 2 files anonymized" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["manifest.jsonl", "pan_anonymized.mp4",
                                                                     "talk_anonymized.mp4"]
    pan, talk = inspect(tmp_path / "out" / "pan_anonymized.mp4"), inspect(tmp_path / "out" / "talk_anonymized.mp4")
    assert len(pan["frames"]) == 90 and pan["size"] == (320, 240) and pan["audio_seconds"] == 0
    assert len(talk["frames"]) == 40 and talk["size"] == (320, 240)
    assert talk["audio_seconds"] == pytest.approx(1.6, abs=0.1), "the tone should be kept, as long as the video"
    # The face (centre left of the sample clip) is hidden: the anonymized frame differs from the source there.
    original = inspect(inputs / "talk.mp4")["frames"][20]
    diff = np.abs(talk["frames"][20].astype(np.int16) - original).mean(axis=2)
    assert diff[40:120, 60:140].mean() > 10 and np.median(diff[:, 260:]) < 4


@pytest.mark.slow
@pytest.mark.onnxruntime
def test_a_bad_file_is_reported_and_the_others_still_run(tmp_path):
    pytest.importorskip("onnxruntime")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video")
    image = media.require(media.astronaut_image)
    proc = run_app(broken, image, tmp_path / "missing.mp4", "--out-dir", tmp_path / "out", "--mode", "pixelate")
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, proc.stderr[-3000:]
    assert any("broken.mp4" in e and "not a video or image file" in e for e in errors)
    assert any("missing.mp4" in e for e in errors)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["astronaut_anonymized.png", "manifest.jsonl"]
    cv2 = pytest.importorskip("cv2")
    out = cv2.imread(str(tmp_path / "out" / "astronaut_anonymized.png"))
    src = cv2.imread(str(image))
    assert out.shape == src.shape and np.abs(out[90:160, 180:270].astype(int) - src[90:160, 180:270]).mean() > 10
    assert np.array_equal(out[300:, :100], src[300:, :100])


def test_nothing_to_do_is_a_usage_error(tmp_path):
    proc = run_app(tmp_path / "nothing_here", "--out-dir", tmp_path / "out", timeout=60)
    assert proc.returncode == 2 and "nothing to anonymize" in proc.stderr


def test_inputs_and_output_names(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "x.mp4").write_bytes(b"")
    (tmp_path / "a" / "x_anonymized.mp4").write_bytes(b"")  # an earlier result: not an input
    (tmp_path / "a" / "y.JPG").write_bytes(b"")
    files, missing = collect([str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "a" / "x.mp4"), "nope"])
    assert [p.relative_to(tmp_path).as_posix() for p in files] == ["a/x.mp4", "a/y.JPG", "b/x.mp4"]
    assert missing == ["nope"]
    names = [name for _, name in plan(files)]
    assert names == ["x_anonymized.mp4", "y_anonymized.jpg", "x_anonymized_2.mp4"]


@pytest.mark.slow
@pytest.mark.onnxruntime
def test_two_jobs_then_a_rerun_skips_what_is_done(tmp_path):
    pytest.importorskip("onnxruntime")
    from tiny_media import make_clip, make_image

    inputs = tmp_path / "in"
    make_clip(inputs / "a.mp4", 6)
    make_clip(inputs / "b.mp4", 4)
    make_image(inputs / "still.png")
    (inputs / "broken.mp4").write_bytes(b"not a video")
    first = run_app(inputs, "--out-dir", tmp_path / "out", "--jobs", "2", "--retries", "0")
    assert first.returncode == 1 and "3 of 4 files anonymized" in first.stderr, first.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a_anonymized.mp4", "b_anonymized.mp4", "manifest.jsonl", "still_anonymized.png"]
    again = run_app(inputs, "--out-dir", tmp_path / "out", "--jobs", "2", "--retries", "0")
    assert again.returncode == 1 and "(3 done in an earlier run)" in again.stderr, again.stderr[-3000:]
    assert [line for line in again.stderr.splitlines() if line.startswith("done:")] == []
    assert len(inspect(tmp_path / "out" / "a_anonymized.mp4")["frames"]) == 6
