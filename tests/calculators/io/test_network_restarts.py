"""Network sources against real servers on loopback, killed, hung and restarted under a running graph: GStreamer's
RTSP server (tests/support/rtsp_server.py), Debian's ffmpeg as an HTTP MJPEG camera, a UDP MPEG-TS sender and an
HLS playlist. Outputs written before a gap stay, timestamps strictly increase across it.
"""
import itertools
import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipelines import Graph

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "support"))
from live_graphs import HOST, Collector, cam_lines, free_port, increasing, network_graph  # noqa: E402


@pytest.fixture
def face_png(tmp_path):
    """The sample clip's first picture (one face) as a PNG for the RTSP server to stream."""
    from media import astronaut_pan_clip, require

    with av.open(str(require(astronaut_pan_clip))) as container:
        rgb = next(container.decode(video=0)).to_ndarray(format="rgb24")
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), rgb[..., ::-1])
    return path


@pytest.fixture
def rtsp(face_png):
    from rtsp_server import RtspServer, unavailable_reason

    why = unavailable_reason()
    if why:
        pytest.skip(why)
    with RtspServer(image=str(face_png)) as server:
        yield server


@pytest.mark.slow
def test_rtsp_server_killed_and_restarted_mid_run(rtsp, caplog):
    caplog.set_level(logging.WARNING)
    text = network_graph(rtsp.url, read_timeout_s=3, reconnect_delay_s=0.2, reconnect_max_delay_s=1)
    handle = Graph.from_string(text).start(outputs=["video"])
    got = Collector(handle)
    got.wait_for(10)
    assert handle.stats.row("cam").status == "streaming"
    rtsp.kill()
    killed_at, before = time.monotonic(), len(got.packets)
    time.sleep(2.0)
    statuses = {handle.stats.row("cam").status for _ in range(3) if not time.sleep(0.2)}
    rtsp.start()  # the same port, as a rebooted camera
    got.wait_for(before + 10)
    packets = got.finish()

    stamps = [p.timestamp for p in packets]
    assert increasing(stamps)
    gap = max(b - a for a, b in itertools.pairwise(stamps))
    assert gap >= 2_000_000, f"the outage does not show in the timestamps (largest step {gap} us)"
    assert all(t < killed_at + 1 for t, _ in got.packets[:before])
    assert any(s.startswith(("reconnecting in", "connecting (attempt")) for s in statuses), statuses
    lines = cam_lines(caplog)
    assert len([m for m in lines if "connection lost: the stream ended" in m]) == 1, lines
    assert all("could not connect: Connection refused; retrying in" in m for m in lines[1:-1]), lines
    assert len(lines) >= 3 and "reconnected after" in lines[-1] and lines[-1].startswith(f"source 'cam' ({rtsp.url})")
    assert packets[-1].payload.image.shape == (240, 320, 3)


@pytest.mark.slow
def test_rtsp_server_that_hangs_is_cut_by_the_read_timeout(rtsp, caplog):
    caplog.set_level(logging.WARNING)
    text = network_graph(rtsp.url, read_timeout_s=1, reconnect_delay_s=0.2, reconnect_max_delay_s=0.5)
    handle = Graph.from_string(text).start(outputs=["video"])
    got = Collector(handle)
    got.wait_for(5)
    rtsp.pause()  # SIGSTOP: the TCP connection stays open, nothing more arrives
    deadline = time.monotonic() + 5
    while not any("read timeout" in m for m in cam_lines(caplog)) and time.monotonic() < deadline:
        time.sleep(0.05)
    rtsp.resume()
    before = len(got.packets)
    got.wait_for(before + 5)
    packets = got.finish()
    lines = cam_lines(caplog)
    assert "connection lost: no data for 1 s (read timeout); retrying in" in lines[0], lines
    assert "reconnected after" in lines[-1], lines
    assert increasing([p.timestamp for p in packets])


@pytest.mark.slow
def test_face_detect_over_rtsp_survives_a_restart_and_ends_cleanly_when_the_camera_dies(rtsp, tmp_path):
    """As a user runs it: boxes and JSON lines go on after the camera restarts; when it dies for good, the run ends
    with one error line naming the node and the URL, and everything written stays complete and playable."""
    out, jsonl, log = tmp_path / "annotated.mp4", tmp_path / "faces.jsonl", tmp_path / "stderr.txt"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "pipelines", "face_detect", "--source", rtsp.url, "--output",
                                 str(out), "--detections", str(jsonl), "--no-display", "--stats",
                                 "--set", "source.reconnect_delay_s=0.2", "--set", "source.reconnect_max_delay_s=0.5",
                                 "--set", "source.reconnect_max_attempts=8", "--set", "source.read_timeout_s=3"],
                                cwd=REPO, stderr=err, stdout=subprocess.DEVNULL)

    def lines_written() -> int:
        return jsonl.read_text().count("\n") if jsonl.exists() else 0

    def wait_lines(n: int, timeout: float = 40) -> None:
        deadline = time.monotonic() + timeout
        while lines_written() < n:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"{lines_written()} lines of {n}:\n{log.read_text()}"
            time.sleep(0.05)

    try:
        wait_lines(15)
        rtsp.kill()
        time.sleep(1.5)
        rtsp.start()
        before = lines_written()
        wait_lines(before + 15)
        rtsp.kill()  # for good: 8 failed attempts (about 3.5 s), then the graph ends
        assert proc.wait(30) == 1, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = log.read_text()
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert errors == [f'error: node "source" (VideoSourceCalculator): video source \'{rtsp.url}\': could not connect: '
                      "Connection refused (gave up after 8 attempts)"], stderr
    assert stderr.count("reconnected after") == 1 and stderr.count("connection lost") == 2, stderr
    table = stderr[stderr.index("\nnode "):]
    assert table.split("\n")[1].split()[-1] == "status", table
    assert next(line for line in table.splitlines() if line.startswith("source ")).endswith(
        "failed: could not connect: Connection refused"), table

    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    stamps = [r["timestamp_us"] for r in records]
    assert increasing(stamps) and increasing([r["frame"] for r in records])
    cut = max(range(1, len(stamps)), key=lambda i: stamps[i] - stamps[i - 1])
    assert stamps[cut] - stamps[cut - 1] >= 1_500_000  # the restart, in the timestamps
    assert 15 <= cut <= len(records) - 15
    with_face = [bool(r["detections"]) for r in records]
    assert all(with_face[:cut]) and all(with_face[cut:]), "a face in every frame, before and after the gap"
    with av.open(str(out)) as container:  # finalized after the error: a moov, every frame decodable
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == len(records) and frames[0].shape == (240, 320, 3)


@pytest.mark.slow
def test_http_mjpeg_from_ffmpeg_restarted_on_the_same_port(caplog):
    """Debian's `ffmpeg -listen 1` as an MJPEG camera over HTTP: killed and started again, the stream goes on."""
    from media import astronaut_pan_clip, require
    from rtsp_server import ffmpeg_http_server

    import shutil
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (apt-get install ffmpeg)")
    caplog.set_level(logging.WARNING)
    clip, port = str(require(astronaut_pan_clip)), free_port()
    server = ffmpeg_http_server(clip, port)
    handle = None
    try:
        time.sleep(0.5)  # ffmpeg starts listening
        text = network_graph(f"http://{HOST}:{port}/live", read_timeout_s=2, reconnect_delay_s=0.2,
                             reconnect_max_delay_s=0.5)
        handle = Graph.from_string(text).start(outputs=["video"])
        got = Collector(handle)
        got.wait_for(10)
        server.kill()
        server.wait(5)
        before = len(got.packets)
        time.sleep(1.0)
        server = ffmpeg_http_server(clip, port)
        got.wait_for(before + 10)
        packets = got.finish()
    finally:
        server.kill()
        server.wait(5)
    lines = cam_lines(caplog)
    # ffmpeg may still be starting when the graph first connects: refusals before the first picture are fine.
    assert any("connection lost" in m for m in lines) and "reconnected after" in lines[-1], lines
    assert increasing([p.timestamp for p in packets])
    assert packets[-1].payload.image.shape == (240, 320, 3) and packets[0].payload.live


# ------------------------------------------------------------------------------------- other protocols

def _ffmpeg(*args) -> subprocess.Popen:
    import shutil

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (apt-get install ffmpeg)")
    return subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", *map(str, args)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_udp_mpegts_sender_restarted(caplog):
    """A live MPEG-TS over UDP: nothing tells the receiver the sender died, so only the read timeout can."""
    from media import astronaut_pan_clip, require

    caplog.set_level(logging.WARNING)
    port = free_port()
    send = ("-re", "-stream_loop", "-1", "-i", require(astronaut_pan_clip), "-an", "-c:v", "libx264", "-preset",
            "ultrafast", "-tune", "zerolatency", "-g", "10", "-f", "mpegts", f"udp://{HOST}:{port}?pkt_size=1316")
    sender = _ffmpeg(*send)
    try:
        text = network_graph(f"udp://{HOST}:{port}", read_timeout_s=1, reconnect_delay_s=0.2,
                             reconnect_max_delay_s=0.5)
        handle = Graph.from_string(text).start(outputs=["video"])
        got = Collector(handle)
        got.wait_for(10)
        sender.kill()
        sender.wait(5)
        before = len(got.packets)
        time.sleep(2.0)
        sender = _ffmpeg(*send)
        got.wait_for(before + 10)
        packets = got.finish()
    finally:
        sender.kill()
        sender.wait(5)
    lines = cam_lines(caplog)
    assert any("connection lost: no data for 1 s (read timeout)" in m for m in lines), lines
    assert "reconnected after" in lines[-1], lines
    stamps = [p.timestamp for p in packets]
    assert increasing(stamps) and max(b - a for a, b in itertools.pairwise(stamps)) >= 2_000_000


@pytest.mark.slow
def test_hls_playlist_of_known_length_ends_at_its_end(tmp_path, caplog):
    import functools
    import http.server

    from media import astronaut_pan_clip, require

    caplog.set_level(logging.WARNING)
    segmenter = _ffmpeg("-i", require(astronaut_pan_clip), "-t", "1.2", "-an", "-c:v", "libx264", "-preset",
                        "ultrafast", "-g", "12", "-f", "hls", "-hls_time", "0.5", "-hls_playlist_type", "vod",
                        tmp_path / "v.m3u8")
    assert segmenter.wait(30) == 0

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((HOST, 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        graph = Graph.from_string(network_graph(f"http://{HOST}:{server.server_port}/v.m3u8"))
        handle = graph.start(outputs=["video"])
        packets = list(handle.outputs("video"))
        assert handle.wait(10)
    finally:
        server.shutdown()
    assert 20 <= len(packets) <= 30 and packets[0].payload.live and packets[0].payload.fps == 25.0
    assert increasing([p.timestamp for p in packets])
    assert cam_lines(caplog) == [] and handle.stats.row("cam").status == "ended"
