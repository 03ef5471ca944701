"""VideoWriterCalculator: real encodes, decoded back with both PyAV and OpenCV."""
import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from media import astronaut_pan_clip, carphone_clip, require
from pipelines import CalculatorError, Graph, GraphValidationError, calculator
from pipelines.registry import unregister_calculator
from pipelines.testing import CalculatorRunner
from pipelines.types import Frame

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")

REPO = Path(__file__).resolve().parents[3]


def copy_graph(source, out, extra: str = "") -> str:
    return f"""
nodes:
  - calculator: VideoSourceCalculator
    outputs: {{IMAGE: video}}
    options: {{source: '{source}'}}
  - calculator: VideoWriterCalculator
    inputs: {{IMAGE: video}}
    options: {{path: '{out}'}}
{textwrap.indent(textwrap.dedent(extra), "  ")}"""


def decode_av(path) -> tuple[list[np.ndarray], object]:
    """Every frame PyAV can decode (stopping at damage, as a player would), and the stream."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info = (stream.width, stream.height, stream.average_rate)
        try:
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
        except av.FFmpegError:
            pass
    return frames, info


def count_cv2(path) -> tuple[int, float, tuple[int, int]]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"OpenCV cannot open {path}"
    n, size = 0, None
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        n, size = n + 1, (bgr.shape[1], bgr.shape[0])
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return n, fps, size


@pytest.mark.slow
def test_round_trip_keeps_count_size_rate_and_pixels(tmp_path):
    clip = require(astronaut_pan_clip)
    out = tmp_path / "nested" / "dir" / "copy.mp4"  # parent folders are created
    Graph.from_string(copy_graph(clip, out)).run(timeout=60)
    frames, (width, height, rate) = decode_av(out)
    assert len(frames) == 90 and (width, height) == (320, 240) and rate == 25
    assert count_cv2(out) == (90, 25.0, (320, 240))
    original, _ = decode_av(clip)
    diff = np.abs(frames[45].astype(np.int16) - original[45]).mean()
    assert diff < 4.0, f"re-encoded frame 45 differs by {diff:.2f} on average"


def test_round_trip_ntsc_rate(tmp_path):
    clip = require(carphone_clip)
    out = tmp_path / "carphone.mp4"
    Graph.from_string(copy_graph(clip, out)).run(timeout=60)
    frames, (width, height, rate) = decode_av(out)
    assert len(frames) == 120 and (width, height) == (176, 144) and rate == Fraction(30000, 1001)
    n, fps, _ = count_cv2(out)
    assert n == 120 and fps == pytest.approx(30000 / 1001, rel=1e-4)


def test_odd_size_is_padded_and_inputs_untouched(tmp_path):
    out = tmp_path / "odd.mp4"
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (75, 101, 3), dtype=np.uint8) for _ in range(12)]
    copies = [im.copy() for im in images]
    frames = [Frame(im, index=i, fps=10.0) for i, im in enumerate(images)]
    runner = CalculatorRunner(f"""
        calculator: VideoWriterCalculator
        options: {{path: '{out}', crf: 18}}
    """)
    runner.run({"IMAGE": [(i * 100_000, f) for i, f in enumerate(frames)]})
    decoded, (width, height, rate) = decode_av(out)
    assert len(decoded) == 12 and (width, height) == (102, 76) and rate == 10
    assert all(np.array_equal(a, b) for a, b in zip(images, copies, strict=True)), "the writer changed an input frame"


def test_no_frames_writes_no_file(tmp_path):
    out = tmp_path / "empty.mp4"
    CalculatorRunner(f"calculator: VideoWriterCalculator\noptions: {{path: '{out}'}}").run({"IMAGE": []})
    assert not out.exists()


def test_file_plays_after_an_error_elsewhere_in_the_graph(tmp_path):
    clip = require(astronaut_pan_clip)
    out = tmp_path / "partial.mp4"

    @calculator(name="FailAtFrame30", replace=True)
    def fail_at_frame_30(IMAGE: Frame) -> None:
        if IMAGE.index == 30:
            raise RuntimeError("boom at frame 30")

    try:
        graph = Graph.from_string(copy_graph(clip, out, """
            # a parallel branch on the same stream fails; the writer must still finalize its file
            - calculator: FailAtFrame30
              inputs: {IMAGE: video}
        """))
        with pytest.raises(CalculatorError, match="boom at frame 30"):
            graph.run(timeout=60)
    finally:
        unregister_calculator("FailAtFrame30")
    frames, (width, height, _) = decode_av(out)
    assert 0 < len(frames) <= 90 and (width, height) == (320, 240)
    assert count_cv2(out)[0] == len(frames)


KILL_SCRIPT = """
import os, signal, sys
from pipelines import Graph, calculator

@calculator(name="KillAtFrame75")
def kill_at_frame_75(IMAGE) -> None:
    if IMAGE.index == 75:
        os.kill(os.getpid(), signal.SIGKILL)  # no close(), no flush: what a crash or `kill -9` leaves

Graph.from_string(sys.argv[1]).run(timeout=60)
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "kill") or sys.platform == "win32", reason="needs SIGKILL")
def test_file_plays_after_the_process_is_killed(tmp_path):
    clip = require(astronaut_pan_clip)
    out = tmp_path / "killed.mp4"
    graph = copy_graph(clip, out, """
        - calculator: KillAtFrame75
          inputs: {IMAGE: video}
    """)
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, graph], cwd=REPO, check=False, capture_output=True,
                          timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    frames, (width, height, _) = decode_av(out)
    # Fragments of 1 s (25 frames) reach the disk as they complete; the one being written is lost.
    assert len(frames) >= 25 and (width, height) == (320, 240)
    assert count_cv2(out)[0] >= 25


def test_options_are_checked_at_load_time(tmp_path):
    with pytest.raises(GraphValidationError, match="crf must be 0..51"):
        Graph.from_string(copy_graph("clip.mp4", tmp_path / "x.mp4").replace("path: ", "crf: 70, path: "))
