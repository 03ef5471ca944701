"""The face detection job as a user runs it: run-graph on real clips, faulty inputs, Ctrl-C."""
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import importlib.util

import pytest

import media

av = pytest.importorskip("av")
pytest.importorskip("onnxruntime")
ROOT = Path(__file__).resolve().parents[1]


def run_graph(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "pipelines", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def decode(path: Path) -> tuple[int, int, int, float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return frames, stream.width, stream.height, float(stream.average_rate)


def errors(result) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.mark.slow
@pytest.mark.parametrize("graph", ["face_detect.yaml", "face_detect_full_range.yaml"])
def test_batch_annotation_writes_every_frame_and_every_detection(graph, tmp_path):
    clip = media.require(media.carphone_clip)
    out, jsonl = tmp_path / "annotated.mp4", tmp_path / "faces.jsonl"
    result = run_graph(f"graphs/{graph}", "--source", clip, "--output", out, "--detections", jsonl)
    assert result.returncode == 0, result.stderr
    frames, width, height, fps = decode(out)
    assert (frames, width, height) == (120, 176, 144) and abs(fps - 30000 / 1001) < 0.01
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [d["frame"] for d in lines] == list(range(120))
    faces = [d for line in lines for d in line["detections"]]
    assert len(faces) >= 110 and all(0 <= f["xyxy"][0] < f["xyxy"][2] <= 176 for f in faces)
    assert all(len(f["keypoints"]) == 6 and f["label"] == "face" for f in faces)


@pytest.mark.slow
def test_the_readme_command_runs_on_the_bundled_clip(tmp_path):
    import re
    import shlex

    setup = re.search(r"```bash\n(python3 -m venv .*?)\n```", (ROOT / "README.md").read_text()).group(1)
    command = shlex.split(setup.rpartition("&& run-graph ")[2])  # its run-graph arguments, verbatim
    result = subprocess.run([sys.executable, "-m", "pipelines", *command], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)  # any folder: the clip comes from the graph library
    assert result.returncode == 0, result.stderr
    assert decode(tmp_path / "annotated.mp4")[:3] == (90, 320, 240)
    assert len((tmp_path / "faces.jsonl").read_text().splitlines()) == 90
    assert "engine onnxruntime" in result.stderr  # the chosen engine is said


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["openvino", "litert"])
def test_engine_flag_switches_every_inference_node(engine, tmp_path):
    module = {"openvino": "openvino", "litert": "ai_edge_litert"}[engine]
    if importlib.util.find_spec(module) is None:  # not imported here: importing OpenVINO sends telemetry
        pytest.skip(f"{module} is not installed")
    result = run_graph("graphs/face_detect.yaml", "--engine", engine, "--max-frames", "5", "--detections",
                       tmp_path / "d.jsonl")
    assert result.returncode == 0, result.stderr
    assert f"engine {engine}" in result.stderr
    assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 5


@pytest.mark.slow
def test_missing_source_file():
    result = run_graph("graphs/face_detect.yaml", "--source", "no/such/clip.mp4")
    assert result.returncode == 1
    (line,) = errors(result)
    assert 'node "source" (VideoSourceCalculator)' in line and "no/such/clip.mp4" in line and "not found" in line


@pytest.mark.slow
def test_absent_camera():
    result = run_graph("graphs/face_detect.yaml", "--source", "7", timeout=60)
    assert result.returncode == 1
    (line,) = errors(result)
    assert "camera 7" in line


def test_missing_model_file_is_refused_at_validation():
    result = run_graph("graphs/face_detect.yaml", "--set", "face_detection.model=[assets/models/nope.onnx]", "--validate")
    assert result.returncode == 2
    (line,) = errors(result)
    assert "option 'model': file assets/models/nope.onnx not found; looked in " in line
    assert 'node "face_detection/inference"' in line


@pytest.mark.slow
def test_model_whose_input_shape_does_not_fit_is_refused_at_validation():
    result = run_graph("graphs/face_detect.yaml", "--set",
                       "face_detection.model=[assets/models/face_detection_full_range.onnx]", "--validate")
    assert result.returncode == 2
    (line,) = errors(result)
    assert "face_detection_full_range.onnx" in line and "192" in line and "128" in line


def test_unknown_engine_is_a_graph_error():
    result = run_graph("graphs/face_detect.yaml", "--engine", "onnxruntim")
    assert result.returncode == 2
    assert any("onnxruntime" in line for line in errors(result))


def faststart_copy(clip: Path, out: Path) -> Path:
    """The clip remuxed with its index first, as cameras and web encoders write it: cut, it still opens."""
    with av.open(str(clip)) as src, av.open(str(out), "w", options={"movflags": "faststart"}) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    return out


@pytest.mark.slow
def test_unreadable_video_is_one_clear_error(tmp_path):
    clip = media.require(media.carphone_clip)
    broken = tmp_path / "cut.mp4"
    broken.write_bytes(clip.read_bytes()[:20000])  # its index is at the end: nothing can be read
    result = run_graph("graphs/face_detect.yaml", "--source", broken, "--output", tmp_path / "out.mp4")
    assert result.returncode == 1
    (line,) = errors(result)
    assert "cut.mp4" in line and "not a video" in line


@pytest.mark.slow
def test_truncated_video_keeps_what_decodes_and_exits_non_zero(tmp_path):
    clip = faststart_copy(media.require(media.carphone_clip), tmp_path / "whole.mp4")
    data = clip.read_bytes()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data[: int(len(data) * 0.6)])
    out = tmp_path / "annotated.mp4"
    result = run_graph("graphs/face_detect.yaml", "--source", broken, "--output", out)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert any("broken.mp4" in line and line.startswith("warning:") for line in result.stderr.splitlines())
    frames = decode(out)[0]
    assert 0 < frames < 120


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_mid_run_leaves_a_playable_video(tmp_path):
    out = tmp_path / "annotated.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "pipelines", "graphs/face_detect.yaml", "--realtime",
                             "--output", str(out)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)  # the clip is 3.6 s at its own pace
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    frames, width, height, _ = decode(out)
    assert 0 < frames < 90 and (width, height) == (320, 240)


@pytest.mark.slow
def test_list_engines_shows_installed_engines_with_versions():
    result = run_graph("--list-engines")
    assert result.returncode == 0
    line = next(line for line in result.stdout.splitlines() if line.startswith("onnxruntime"))
    assert "not installed" not in line and "cpu" in line.lower()


@pytest.mark.slow
@pytest.mark.kserve
def test_an_unreachable_server_falls_back_to_the_next_engine_with_one_line(tmp_path):
    pytest.importorskip("tritonclient")
    pytest.importorskip("onnxruntime")
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "faces.jsonl"
    result = run_graph("face_detect", "--set", f'face_detection.engine=[{{kserve: {{url: "127.0.0.1:{port}"}}}}, onnxruntime]',
                       "--max-frames", 4, "--no-display", "--no-progress", "--detections", out)
    assert result.returncode == 0, result.stderr
    fallbacks = [line for line in result.stderr.splitlines() if "falling back" in line]
    assert len(fallbacks) == 1 and f"engine kserve unavailable (cannot reach http://127.0.0.1:{port}" in fallbacks[0]
    assert "falling back to onnxruntime" in fallbacks[0]
    assert len(out.read_text().splitlines()) == 4
    typo = run_graph("face_detect", "--set", f'face_detection.engine=[{{kserve: {{url: "127.0.0.1:{port}", protcol: grpc}}}}, onnxruntime]')
    assert typo.returncode == 2
    (line,) = errors(typo)
    assert "engine 'kserve': unknown option 'protcol'. Did you mean 'protocol'?" in line
