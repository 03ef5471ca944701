"""VideoSourceCalculator on real media: files, images, folders, damaged files, an HTTP stream."""
import functools
import http.server
import itertools
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from media import MEDIA_INFO, astronaut_image, astronaut_pan_clip, carphone_clip, require
from calculators.io.video_source import is_live_source
from pipelines import CalculatorError, Graph, GraphValidationError, SourceOpenError

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")

REPO = Path(__file__).resolve().parents[3]


def increasing(values) -> bool:
    return all(b > a for a, b in itertools.pairwise(values))


def _open_error(source_yaml, source) -> SourceOpenError:
    with pytest.raises(CalculatorError) as info:
        Graph.from_string(source_yaml(source)).run(outputs=["video"], timeout=30)
    assert info.value.method == "open"
    assert isinstance(info.value.original, SourceOpenError), info.value
    return info.value.original


def test_sample_clip_frames_timestamps_and_metadata(run_graph, source_yaml):
    clip = require(astronaut_pan_clip)
    packets, problems = run_graph(source_yaml(clip))
    info = MEDIA_INFO["astronaut_pan"]
    assert len(packets) == info["frames"] == 90
    assert problems == []
    stamps = [p.timestamp for p in packets]
    assert increasing(stamps)
    assert stamps[:3] == [0, 40_000, 80_000] and stamps[-1] == 89 * 40_000  # the file's pts, in microseconds
    frames = [p.payload for p in packets]
    assert [f.index for f in frames] == list(range(90))
    first = frames[0]
    assert first.image.shape == (info["height"], info["width"], 3) and first.image.dtype == np.uint8
    assert first.fps == 25.0 and first.total_frames == 90 and first.live is False
    assert first.source == str(clip)


def test_frames_are_rgb_like_opencv_reversed(run_graph, source_yaml):
    clip = require(astronaut_pan_clip)
    packets, _ = run_graph(source_yaml(clip, max_frames=1))
    ours = packets[0].payload.image.astype(np.int16)
    ok, bgr = cv2.VideoCapture(str(clip)).read()
    assert ok
    same = np.abs(ours - bgr[..., ::-1]).mean()
    swapped = np.abs(ours - bgr).mean()
    assert same < 3.0, f"differs from OpenCV's decode (as RGB) by {same:.2f} on average"
    assert swapped > 4 * same + 5, "channels look BGR, not RGB"


def test_known_pixel_colours_come_out_rgb(run_graph, source_yaml, tmp_path):
    bgr = np.zeros((40, 60, 3), np.uint8)
    bgr[:20, :30] = (0, 0, 255)  # red in OpenCV's BGR order
    bgr[20:, 30:] = (255, 0, 0)  # blue
    cv2.imwrite(str(tmp_path / "colours.png"), bgr)
    packets, _ = run_graph(source_yaml(tmp_path / "colours.png"))
    image = packets[0].payload.image
    assert tuple(image[5, 5]) == (255, 0, 0)
    assert tuple(image[35, 55]) == (0, 0, 255)


def test_carphone_clip_ntsc_rate(run_graph, source_yaml):
    clip = require(carphone_clip)
    packets, problems = run_graph(source_yaml(clip))
    assert len(packets) == 120 and problems == []
    stamps = [p.timestamp for p in packets]
    assert increasing(stamps)
    assert stamps[1] == 33_367 and stamps[-1] == 3_970_633  # 1001/30000 s per frame, rounded to microseconds
    frame = packets[0].payload
    assert frame.fps == pytest.approx(30000 / 1001) and frame.total_frames == 120
    assert frame.image.shape == (144, 176, 3)


def test_single_image_file(run_graph, source_yaml):
    image = require(astronaut_image)
    packets, _ = run_graph(source_yaml(image))
    assert len(packets) == 1 and packets[0].timestamp == 0
    frame = packets[0].payload
    assert frame.image.shape == (512, 512, 3) and frame.total_frames == 1 and frame.index == 0


def _write_frames(folder, names):
    folder.mkdir(exist_ok=True)
    for i, name in enumerate(names):
        cv2.imwrite(str(folder / name), np.full((24, 32, 3), 10 * (i + 1), np.uint8))


def test_image_folder_sorted_with_fps(run_graph, source_yaml, tmp_path):
    folder = tmp_path / "frames"
    _write_frames(folder, ["f_00.png", "f_01.png", "f_02.png", "f_03.png"])
    (folder / "notes.txt").write_text("not an image, and not picked up from a folder")
    packets, problems = run_graph(source_yaml(folder))
    assert problems == []
    assert [p.payload.image[0, 0, 0] for p in packets] == [10, 20, 30, 40]
    assert [p.timestamp for p in packets] == [0, 33_333, 66_667, 100_000]  # default 30 fps
    assert packets[0].payload.fps == 30.0 and packets[0].payload.total_frames == 4
    assert packets[2].payload.source == str(folder / "f_02.png")

    packets, _ = run_graph(source_yaml(folder, fps=10.0))
    assert [p.timestamp for p in packets] == [0, 100_000, 200_000, 300_000]


def test_glob_of_images(run_graph, source_yaml, tmp_path):
    _write_frames(tmp_path, ["b.png", "a.png", "c.jpg", "d.png"])
    packets, _ = run_graph(source_yaml(tmp_path / "*.png"))
    assert [p.payload.source for p in packets] == [str(tmp_path / n) for n in ("a.png", "b.png", "d.png")]


def test_max_frames(run_graph, source_yaml):
    packets, _ = run_graph(source_yaml(require(astronaut_pan_clip), max_frames=10))
    assert len(packets) == 10 and packets[-1].payload.index == 9


@pytest.mark.parametrize("clip_fn", [astronaut_pan_clip, carphone_clip], ids=["astronaut_pan", "carphone"])
def test_threaded_decoding_gives_the_same_frames_in_the_same_order(run_graph, source_yaml, clip_fn):
    clip = require(clip_fn)
    runs = {threads: run_graph(source_yaml(clip, threads=threads)) for threads in (1, 0, 3)}  # off, auto, 3
    single, _ = runs[1]
    for threads, (packets, problems) in runs.items():
        assert problems == []
        assert [p.timestamp for p in packets] == [p.timestamp for p in single], threads
        assert [p.payload.index for p in packets] == [p.payload.index for p in single], threads
        assert all(np.array_equal(a.payload.image, b.payload.image) for a, b in zip(packets, single)), threads


def test_realtime_paces_at_the_clip_rate(run_graph, source_yaml):
    clip = require(astronaut_pan_clip)
    n = 12
    start = time.monotonic()
    packets, _ = run_graph(source_yaml(clip, max_frames=n, realtime=True))
    elapsed = time.monotonic() - start
    assert len(packets) == n
    assert elapsed >= (n - 1) / 25 - 0.03, f"{n} frames at 25 fps took only {elapsed:.3f} s"


def test_missing_file(source_yaml, tmp_path):
    err = _open_error(source_yaml, tmp_path / "nope.mp4")
    assert "file not found" in str(err) and str(tmp_path / "nope.mp4") in str(err)


def test_file_that_is_not_video(source_yaml, tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("hello, this is not a video\n" * 20)
    err = _open_error(source_yaml, path)
    assert str(path) in str(err) and "not a video" in str(err)


def test_absent_camera(source_yaml):
    err = _open_error(source_yaml, "7")
    assert "camera 7 could not be opened" in str(err)


def test_empty_folder_and_unmatched_glob(source_yaml, tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no image files" in str(_open_error(source_yaml, tmp_path / "empty"))
    assert "no files match" in str(_open_error(source_yaml, tmp_path / "*.png"))


def test_truncated_file_decodes_what_it_can_and_reports(run_graph, source_yaml, tmp_path):
    clip = require(astronaut_pan_clip)  # index (moov) at the front: cutting the end damages only the frames
    data = clip.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat"), "expected a faststart (non-fragmented) sample clip"
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    packets, problems = run_graph(source_yaml(cut))
    assert 10 < len(packets) < 90
    stamps = [p.timestamp for p in packets]
    assert increasing(stamps)
    assert len(problems) == 1, problems
    assert f"decoding stopped at frame {len(packets)}" in problems[0] and str(cut) in problems[0]
    assert "the frames before it were processed" in problems[0]


def test_repeated_timestamps_are_bumped_and_warned_once(run_graph, source_yaml, tmp_path, caplog):
    path = tmp_path / "repeats.mkv"  # Matroska + FFV1 accept a repeated pts, as some broken muxers write them
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i, pts in enumerate([0, 1, 1, 2, 2, 3]):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * i, np.uint8), format="rgb24")
            frame.pts = pts
            for packet in stream.encode(frame):
                out.mux(packet)
        out.mux(stream.encode(None))
    packets, problems = run_graph(source_yaml(path))
    assert [p.timestamp for p in packets] == [0, 40_000, 40_001, 80_000, 80_001, 120_000]
    assert problems == []
    warnings = [r for r in caplog.records if "does not increase" in r.getMessage()]
    assert len(warnings) == 1 and "frame 2" in warnings[0].getMessage()


def test_options_are_checked_at_load_time(source_yaml):
    with pytest.raises(GraphValidationError, match="max_frames must be >= 0"):
        Graph.from_string(source_yaml("clip.mp4", max_frames=-1))


def test_is_live_source():
    for live in ("0", "3", "rtsp://10.0.0.2/stream", "https://example.com/live.m3u8", "HTTP://x/y"):
        assert is_live_source(live), live
    for not_live in ("clip.mp4", "/tmp/0.mp4", "frames/*.png", "file:///tmp/clip.mp4", ""):
        assert not is_live_source(not_live), not_live


@pytest.fixture
def http_clip(tmp_path):
    """The sample clip served over HTTP from this process: a network source that needs no network."""
    clip = require(astronaut_pan_clip)
    shutil.copy(clip, tmp_path / "clip.mp4")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/clip.mp4"
    server.shutdown()
    thread.join(5)


@pytest.mark.slow
def test_http_stream_is_live_paced_and_ends(run_graph, source_yaml, http_clip):
    start = time.monotonic()
    packets, problems = run_graph(source_yaml(http_clip))
    elapsed = time.monotonic() - start
    assert problems == []
    assert 60 <= len(packets) <= 90  # the newest frame wins; a fast graph sees nearly all of them
    frames = [p.payload for p in packets]
    assert all(f.live for f in frames) and frames[0].fps == 25.0
    assert increasing([f.index for f in frames])
    stamps = [p.timestamp for p in packets]
    assert increasing(stamps)
    assert elapsed >= 3.0, "a network stream is decoded at its own rate, not as fast as possible"


def test_http_stream_stops_gracefully(http_clip, source_yaml):
    graph = Graph.from_string(source_yaml(http_clip))
    handle = graph.start(outputs=["video"])
    got = []
    for packet in handle.outputs("video"):
        got.append(packet)
        if len(got) == 5:
            handle.stop()
    assert handle.wait(5)
    assert 5 <= len(got) < 20


def test_io_modules_import_without_av_or_opencv():
    # The registry imports every built-in module, also where the video extra is not installed.
    code = """
import sys
sys.modules["av"] = sys.modules["cv2"] = None  # makes `import av` / `import cv2` fail
from pipelines import get_calculator
for name in ("VideoSourceCalculator", "VideoWriterCalculator", "DisplayCalculator", "DetectionsJsonlCalculator"):
    get_calculator(name)
from calculators.io.display import display_available
ok, why = display_available()
assert not ok and "OpenCV is not installed" in why, why
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=False, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.slow
def test_http_stream_end_shows_in_the_stats_even_when_it_comes_late(http_clip, source_yaml, monkeypatch):
    """The capture thread says "ended" and stops in one breath; the graph thread must still publish that status
    when it sees the reader end, not only at the top of its next wait (a race seen in CI on a busy machine)."""
    from calculators.io import network_stream

    def late_end(self, halted, _next=network_stream.NetworkStream._next_frame):
        item = _next(self, halted)
        if item is None:
            time.sleep(0.3)  # the graph thread polls meanwhile and sees "streaming" every time
        return item

    monkeypatch.setattr(network_stream.NetworkStream, "_next_frame", late_end)
    handle = Graph.from_string(source_yaml(http_clip)).start(outputs=["video"])
    packets = list(handle.outputs("video"))
    assert handle.wait(10) and len(packets) >= 60
    assert handle.stats.row("video_source").status == "ended"
