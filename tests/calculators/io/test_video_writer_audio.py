"""VideoWriterCalculator's audio_from: audio copied (or re-encoded to AAC) beside the video, in sync, and kept by
runs that stop early. Every clip is generated here with PyAV: video plus a sine tone."""
import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from media import astronaut_pan_clip, require

from pipelines import Graph

av = pytest.importorskip("av")

REPO = Path(__file__).resolve().parents[3]
FPS, RATE = 25, 44100
FLASH_S = 1.0  # the video turns white and the tone gets loud here: the sync mark


def make_clip(path, seconds=2.0, audio_codec="aac", size=(160, 120)) -> Path:
    """H.264 video (dark, white from FLASH_S for 0.2 s) and a 440 Hz tone, loud over the same 0.2 s."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        audio = container.add_stream(audio_codec, rate=RATE)
        audio.layout = "mono"
        for i in range(int(seconds * FPS)):
            flash = FLASH_S <= i / FPS < FLASH_S + 0.2
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 250 if flash else 20, np.uint8))
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        t = np.arange(int(seconds * RATE)) / RATE
        loud = (t >= FLASH_S) & (t < FLASH_S + 0.2)
        pcm = (np.where(loud, 0.8, 0.05) * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
        for start in range(0, len(pcm), 1024):
            frame = av.AudioFrame.from_ndarray(pcm[None, start:start + 1024], format="s16", layout="mono")
            frame.rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    return Path(path)


def copy_graph(source, out, audio_from=None, source_options: str = "") -> str:
    return f"""
nodes:
  - calculator: VideoSourceCalculator
    outputs: {{IMAGE: video}}
    options: {{source: '{source}'{source_options}}}
  - calculator: VideoWriterCalculator
    inputs: {{IMAGE: video}}
    options: {{path: '{out}', audio_from: '{source if audio_from is None else audio_from}'}}
"""


def probe(path) -> dict:
    """What a player gets: codecs, video frame times and levels, audio frames (time, mono samples)."""
    info = {"video_times": [], "video_levels": [], "audio": [], "audio_codec": None}
    with av.open(str(path)) as container:
        info["video_codec"] = container.streams.video[0].codec_context.name
        if container.streams.audio:
            info["audio_codec"] = container.streams.audio[0].codec_context.codec.canonical_name
        for frame in container.decode(*container.streams):
            if isinstance(frame, av.AudioFrame):
                samples = frame.to_ndarray().astype(np.float64).reshape(-1, frame.samples).mean(axis=0)
                info["audio"].append((frame.time, frame.sample_rate, samples))
            else:
                info["video_times"].append(frame.time)
                info["video_levels"].append(float(frame.to_ndarray(format="gray").mean()))
    info["audio_seconds"] = sum(len(s) / rate for _, rate, s in info["audio"])
    return info


def flash_times(info) -> tuple[float, float]:
    """When the picture turns white, and when the tone gets loud, by the output's own timestamps."""
    video = next(t for t, level in zip(info["video_times"], info["video_levels"]) if level > 128)
    peak = max(np.abs(s).max() for _, _, s in info["audio"])
    for time, rate, samples in info["audio"]:
        loud = np.flatnonzero(np.abs(samples) > 0.5 * peak)
        if len(loud):
            return video, time + loud[0] / rate
    raise AssertionError("no loud audio")


@pytest.mark.parametrize("audio_codec, suffix, copied_as", [
    ("aac", ".mp4", "aac"),  # MP4 takes AAC: remuxed
    ("libmp3lame", ".mp4", "mp3"),  # and MP3
    ("pcm_s16le", ".mkv", "aac"),  # PCM is not played from MP4 by most players: re-encoded to AAC
])
def test_audio_is_copied_with_its_duration_and_in_sync(tmp_path, audio_codec, suffix, copied_as):
    if audio_codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg build has no {audio_codec} encoder")
    clip = make_clip(tmp_path / f"clip{suffix}", audio_codec=audio_codec)
    out = tmp_path / "out.mp4"
    Graph.from_string(copy_graph(clip, out)).run(timeout=60)
    info = probe(out)
    assert len(info["video_times"]) == 50 and info["video_codec"] == "h264"
    assert info["audio_codec"] == copied_as
    assert info["audio_seconds"] == pytest.approx(2.0, abs=0.1)
    video_flash, audio_flash = flash_times(info)
    assert abs(video_flash - audio_flash) < 0.02, f"A/V out of sync: picture at {video_flash}, sound at {audio_flash}"


def test_a_run_stopped_early_has_audio_up_to_its_end(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", seconds=3.0)
    out = tmp_path / "out.mp4"
    Graph.from_string(copy_graph(clip, out, source_options=", max_frames: 30")).run(timeout=60)
    info = probe(out)
    assert len(info["video_times"]) == 30
    assert info["audio_seconds"] == pytest.approx(1.2, abs=0.1)  # 30 frames at 25 fps, not the clip's 3 s


KILL_SCRIPT = """
import os, signal, sys
from pipelines import Graph, calculator

@calculator(name="KillAtFrame75")
def kill_at_frame_75(IMAGE) -> None:
    if IMAGE.index == 75:
        os.kill(os.getpid(), signal.SIGKILL)  # no close(), no flush

Graph.from_string(sys.argv[1]).run(timeout=60)
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "kill") or sys.platform == "win32", reason="needs SIGKILL")
def test_a_killed_run_leaves_a_playable_file_with_audio(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", seconds=4.0)
    out = tmp_path / "killed.mp4"
    graph = copy_graph(clip, out) + textwrap.dedent("""
      - calculator: KillAtFrame75
        inputs: {IMAGE: video}
    """).replace("\n", "\n  ")
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, graph], cwd=REPO, capture_output=True, timeout=60,
                          check=False)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    info = probe(out)
    # Fragments of 1 s reach the disk as they complete, audio in step with video.
    assert len(info["video_times"]) >= 25 and info["audio_codec"] == "aac"
    assert info["audio_seconds"] >= 0.9
    assert abs(info["audio_seconds"] - len(info["video_times"]) / FPS) < 0.5


def test_a_source_without_audio_gives_video_only(tmp_path):
    clip = require(astronaut_pan_clip)
    out = tmp_path / "out.mp4"
    Graph.from_string(copy_graph(clip, out)).run(timeout=60)
    info = probe(out)
    assert len(info["video_times"]) == 90 and info["audio_codec"] is None


@pytest.mark.parametrize("audio_from", ["0", "rtsp://camera/stream", "{tmp}", "{tmp}/*.png"])
def test_cameras_streams_and_folders_are_not_audio(tmp_path, audio_from):
    clip = require(astronaut_pan_clip)
    out = tmp_path / "out.mp4"
    graph = copy_graph(clip, out, audio_from=audio_from.format(tmp=tmp_path), source_options=", max_frames: 5")
    Graph.from_string(graph).run(timeout=60)
    assert probe(out)["audio_codec"] is None


def test_a_missing_audio_file_is_an_error_before_any_frame(tmp_path):
    from pipelines import PipelineError

    clip = require(astronaut_pan_clip)
    with pytest.raises(PipelineError, match="audio_from '[^']*/no_such.mp4': file not found"):
        Graph.from_string(copy_graph(clip, tmp_path / "out.mp4", audio_from="no_such.mp4")).run(timeout=60)
    assert not (tmp_path / "out.mp4").exists()
