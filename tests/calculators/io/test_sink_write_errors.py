"""Sinks that cannot write their file say which file and why (OutputWriteError), and keep what was written usable.

/dev/full fails every write with ENOSPC, like a full disk; a subprocess with RLIMIT_FSIZE fails part way through
(EFBIG), like a disk that fills up during the run. A read-only folder is refused before the run; a read-only file
in the way fails at open and stays as it was (as root, in a process without CAP_DAC_OVERRIDE).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from media import astronaut_pan_clip, require
from pipelines import CalculatorError
from pipelines.errors import OutputWriteError
from pipelines.testing import CalculatorRunner
from pipelines.types import Detections, Frame

REPO = Path(__file__).resolve().parents[3]
FULL = "/dev/full"
needs_dev_full = pytest.mark.skipif(not os.path.exists(FULL), reason="needs /dev/full (Linux)")


def frame(index: int, size: int = 64, noise: bool = False) -> Frame:
    rng = np.random.default_rng(index)
    image = rng.integers(0, 256, (size, size, 3), np.uint8) if noise else np.zeros((size, size, 3), np.uint8)
    return Frame(image, index=index, source="synthetic", fps=25.0)


def one_face() -> Detections:
    return Detections(xyxy=np.array([[0.1, 0.2, 0.5, 0.6]], np.float32), scores=np.array([0.9], np.float32))


def jsonl_runner(path) -> CalculatorRunner:
    return CalculatorRunner(f"calculator: DetectionsJsonlCalculator\noptions: {{path: '{path}'}}")


def video_runner(path, extra: str = "") -> CalculatorRunner:
    return CalculatorRunner(f"calculator: VideoWriterCalculator\noptions: {{path: '{path}'{extra}}}")


def assert_write_error(info, path, reason: str) -> OutputWriteError:
    error = info.value
    assert isinstance(error, CalculatorError)
    assert isinstance(error.original, OutputWriteError), repr(error.original)
    assert error.original.__cause__ is not None  # `from exc`: the OSError or PyAV error behind it
    assert f"cannot write {path}: {reason}" in str(error)
    return error.original


@needs_dev_full
def test_detections_jsonl_on_a_full_disk(caplog):
    with pytest.raises(CalculatorError) as info:
        jsonl_runner(FULL).run({"DETECTIONS": [(0, one_face())], "IMAGE": [(0, frame(0))]})
    original = assert_write_error(info, FULL, "no space left on device")
    assert original.errno == errno.ENOSPC and info.value.method == "process"
    assert "also failed in close()" not in caplog.text  # the first error is the one reported, and alone


@needs_dev_full
@pytest.mark.parametrize("frames", [3, 100], ids=["fails-in-close", "fails-in-process"])
def test_video_writer_on_a_full_disk(caplog, frames):
    pytest.importorskip("av", reason="the video writer needs PyAV (pip install 'framegraph[video]')")
    # x264 holds back its first frames: 3 frames reach the file only when close() flushes the encoder.
    with pytest.raises(CalculatorError) as info:
        video_runner(FULL, ", format: mp4").run({"IMAGE": [frame(i) for i in range(frames)]})
    original = assert_write_error(info, FULL, "no space left on device")
    assert original.errno == errno.ENOSPC
    assert info.value.method == ("close" if frames == 3 else "process")
    assert "also failed in close()" not in caplog.text


# Root writes into read-only folders anyway (CAP_DAC_OVERRIDE): as root the sink runs in a process without it.
READ_ONLY_SCRIPT = """
import sys
sys.path.insert(0, "tests")
from test_sink_write_errors import frame, jsonl_runner, video_runner  # noqa: E402
from pipelines import CalculatorError, GraphValidationError  # noqa: E402

sink, path = sys.argv[1], sys.argv[2]
try:
    if sink == "jsonl":
        jsonl_runner(path).run({"DETECTIONS": [], "IMAGE": [(0, frame(0))]})
    else:
        video_runner(path).run({"IMAGE": [frame(0)]})
except GraphValidationError as exc:
    print(*exc.issues, sep="\\n")
except CalculatorError as exc:
    print(type(exc.original).__name__, exc.original)
"""
SINKS = {"jsonl": ("d.jsonl", 'node "detections_jsonl" (DetectionsJsonlCalculator)'),
         "video": ("v.mp4", 'node "video_writer" (VideoWriterCalculator)')}


def without_root_override() -> list[str]:
    """The command prefix that runs a process unable to write where its permissions say it cannot."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    if shutil.which("setpriv") is None:
        pytest.skip("as root this needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
    if subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("as root this needs CAP_SETPCAP to drop CAP_DAC_OVERRIDE (a container without it)")
    return prefix


def run_read_only(sink: str, path: Path) -> str:
    if sink == "video":
        pytest.importorskip("av", reason="the video writer needs PyAV (pip install 'framegraph[video]')")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "calculators" / "io"), str(REPO)])}
    proc = subprocess.run([*without_root_override(), sys.executable, "-c", textwrap.dedent(READ_ONLY_SCRIPT), sink,
                           str(path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
@pytest.mark.parametrize("sink", SINKS)
def test_a_read_only_folder_is_refused_before_the_run(tmp_path, sink):
    name, node = SINKS[sink]
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        said = run_read_only(sink, folder / name)
    finally:
        folder.chmod(0o700)
    assert said.endswith(f"{node}: option 'path': cannot create {folder / name}: folder {folder} is not writable"), said
    assert not (folder / name).exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
@pytest.mark.parametrize("sink", SINKS)
def test_a_read_only_file_in_the_way(tmp_path, sink):
    name, _ = SINKS[sink]
    path = tmp_path / name
    path.write_bytes(b"keep me")
    path.chmod(0o400)
    said = run_read_only(sink, path)
    assert said == f"OutputWriteError cannot write {path}: permission denied", said
    assert path.read_bytes() == b"keep me"


# A disk that fills up part way: writes past `limit` bytes fail with EFBIG ("file too large").
FILL_UP_SCRIPT = """
import resource, signal, sys
import numpy as np
sys.path.insert(0, "tests")
from test_sink_write_errors import frame, jsonl_runner, one_face, video_runner  # noqa: E402
from pipelines import CalculatorError  # noqa: E402

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failing write, not a killed process
sink, path, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
try:
    if sink == "jsonl":
        jsonl_runner(path).run({"DETECTIONS": [(i, one_face()) for i in range(100)],
                                "IMAGE": [(i, frame(i)) for i in range(100)]})
    else:
        video_runner(path).run({"IMAGE": [frame(i, noise=True) for i in range(250)]})
except CalculatorError as exc:
    print(type(exc.original).__name__, exc.original)
"""


def fill_up(sink: str, path: Path, limit: int) -> str:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1",  # no .pyc writes under the file size limit
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "calculators" / "io"), str(REPO)])}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(FILL_UP_SCRIPT), sink, str(path), str(limit)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE")
def test_jsonl_keeps_whole_lines_when_the_disk_fills_up(tmp_path):
    path = tmp_path / "dets.jsonl"
    assert fill_up("jsonl", path, 1000) == f"OutputWriteError cannot write {path}: file too large"
    text = path.read_text()
    assert text.endswith("\n"), "the partial last line is cut off"
    rows = [json.loads(line) for line in text.splitlines()]
    assert 0 < len(rows) < 100 and [r["frame"] for r in rows] == list(range(len(rows)))


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE")
def test_video_keeps_whole_fragments_when_the_disk_fills_up(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "noise.mp4"
    assert fill_up("video", path, 400_000) == f"OutputWriteError cannot write {path}: file too large"
    with av.open(str(path)) as container:  # no damage at the end: decoding raises nothing
        decoded = sum(1 for _ in container.decode(video=0))
    assert 25 <= decoded < 250  # the fragments written in full, at least the first second


@pytest.mark.slow
def test_cli_names_the_node_and_the_file_in_one_line():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("cv2", reason="the face graph needs OpenCV and PyAV (pip install 'framegraph[video]')")
    clip = require(astronaut_pan_clip)
    if not os.path.exists(FULL):
        pytest.skip("needs /dev/full (Linux)")
    proc = subprocess.run([sys.executable, "-m", "pipelines", "graphs/face_detect.yaml", "--source", str(clip),
                           "--detections", FULL, "--no-display", "--no-progress"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == ['error: node "detections_writer" (DetectionsJsonlCalculator) at timestamp 0: '
                      'cannot write /dev/full: no space left on device'], proc.stderr[-3000:]
    assert "also failed" not in proc.stderr
