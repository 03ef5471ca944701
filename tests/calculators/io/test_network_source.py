"""Network sources that survive, against servers written here on loopback: a refused port, a socket that accepts
and never answers, an MJPEG camera that stalls mid-stream; the backoff never blocks the graph, and Ctrl-C ends it
at once. The real servers (GStreamer's RTSP server, ffmpeg) restarted under a graph: test_network_restarts.py.
"""
import logging
import random
import re
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from calculators.io.network_stream import ReconnectPolicy
from pipelines import CalculatorError, Graph, GraphValidationError, SourceOpenError

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "support"))
from live_graphs import HOST, free_port, increasing, network_graph  # noqa: E402


def run_to_error(text: str, timeout: float = 20) -> tuple[SourceOpenError, list, float]:
    """Run until the graph fails; the source's error, the packets it delivered, and the seconds it took."""
    handle = Graph.from_string(text).start(outputs=["video"])
    start, packets = time.monotonic(), []
    with pytest.raises(CalculatorError) as info:
        packets.extend(handle.outputs("video"))
        handle.wait(timeout)
    assert isinstance(info.value.original, SourceOpenError), info.value
    assert info.value.node == "cam"
    return info.value.original, packets, time.monotonic() - start


class StallingMjpegServer:
    """An HTTP MJPEG camera on loopback that sends `frames` pictures to each of its first `streams` clients and
    then goes silent with the connection open (a hung camera); later clients (all, when `frames=0`) are
    accepted and never answered."""

    def __init__(self, frames: int, streams: int = 2):
        self.frames, self.streams, self.clients = frames, streams, 0
        self._sock = socket.create_server((HOST, 0))
        self.url = f"http://{HOST}:{self._sock.getsockname()[1]}/video.mjpg"
        self._held: list[socket.socket] = []
        self._done = threading.Event()
        image = np.zeros((48, 64, 3), np.uint8)
        image[:, :32] = (0, 0, 255)
        self._jpeg = cv2.imencode(".jpg", image)[1].tobytes()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self._done.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.clients += 1
            self._held.append(conn)
            if self.frames and self.clients <= self.streams:
                conn.recv(65536)  # the request
                part = (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(self._jpeg)
                        + self._jpeg + b"\r\n")
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=frame\r\n\r\n"
                             + part * self.frames)

    def close(self):
        self._done.set()
        self._sock.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def stalling_server(request):
    server = StallingMjpegServer(request.param)
    yield server
    server.close()


# ---------------------------------------------------------------------------------------------- the policy

def test_backoff_doubles_up_to_the_maximum_with_bounded_jitter():
    policy = ReconnectPolicy(initial_delay_s=0.5, max_delay_s=4.0, jitter=0.0)
    assert [policy.delay(n) for n in range(2, 8)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    jittery = ReconnectPolicy(initial_delay_s=1.0, max_delay_s=1.0, jitter=0.25)
    delays = [jittery.delay(5, random.Random(seed)) for seed in range(200)]
    assert 0.75 <= min(delays) < 0.85 and 1.15 < max(delays) <= 1.25  # spread over the whole band
    assert not ReconnectPolicy(max_attempts=0).gives_up_after(10_000)  # 0: forever
    assert ReconnectPolicy(max_attempts=3).gives_up_after(3) and not ReconnectPolicy(max_attempts=3).gives_up_after(2)
    assert ReconnectPolicy(enabled=False).gives_up_after(1)


@pytest.mark.parametrize("option, message", [
    ("reconnect_delay_s: 0", "0 < reconnect_delay_s <= reconnect_max_delay_s"),
    ("reconnect_delay_s: 20", "0 < reconnect_delay_s <= reconnect_max_delay_s"),
    ("reconnect_jitter: 1.5", "reconnect_jitter must be in [0, 1)"),
    ("reconnect_max_attempts: -1", "reconnect_max_attempts must be >= 0"),
    ("read_timeout_s: 0", "read_timeout_s must be > 0"),
    ("reconnect: maybe", "option 'reconnect': expected true or false"),
    ("threads: -2", "threads must be >= 0"),
    ("stream_options: {a: [1]}", "stream_options values must be strings or numbers"),
])
def test_options_are_checked_at_load_time(option, message):
    key, value = option.split(": ", 1)
    with pytest.raises(GraphValidationError, match=re.escape(message)):
        Graph.from_string(network_graph(f"rtsp://{HOST}:9/cam", **{key: value}))


# ------------------------------------------------------------------------------------ refused and stalled

def test_refused_from_the_start_gives_up_after_max_attempts_with_one_line(caplog):
    url = f"rtsp://{HOST}:{free_port()}/cam"
    caplog.set_level(logging.WARNING)
    err, packets, took = run_to_error(network_graph(url, reconnect_max_attempts=3, reconnect_delay_s=0.05))
    assert packets == [] and took < 3
    assert str(err) == f"video source '{url}': could not connect: Connection refused (gave up after 3 attempts)"
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2, retries  # attempts 2 and 3
    assert retries[0].startswith(f"source 'cam' ({url}): could not connect: Connection refused; retrying in 0.")
    assert retries[0].endswith("s (attempt 2)") and retries[1].endswith("(attempt 3)")


def test_a_protocol_this_ffmpeg_lacks_fails_at_once_with_a_hint():
    url = f"srt://{HOST}:{free_port()}"
    try:
        av.open(url, timeout=0.2).close()
    except av.ProtocolNotFoundError:
        pass
    except av.FFmpegError:
        pytest.skip("this PyAV's FFmpeg reads srt://")
    err, _, took = run_to_error(network_graph(url, reconnect_delay_s=0.05))  # forever: it must not retry at all
    assert "cannot read srt:// streams (protocol not found)" in str(err) and took < 2


def test_reconnect_off_fails_at_the_first_refusal():
    url = f"rtsp://{HOST}:{free_port()}/cam"
    err, _, took = run_to_error(network_graph(url, reconnect="false"))
    assert "could not connect: Connection refused (reconnect is off)" in str(err) and took < 2


@pytest.mark.slow
@pytest.mark.parametrize("stalling_server", [0], indirect=True)
def test_a_server_that_accepts_and_never_answers_is_cut_by_the_read_timeout(stalling_server):
    text = network_graph(stalling_server.url, read_timeout_s=0.4, reconnect_max_attempts=2, reconnect_delay_s=0.05)
    err, packets, took = run_to_error(text)
    assert "could not connect: no data for 0.4 s (read timeout) (gave up after 2 attempts)" in str(err)
    assert packets == [] and stalling_server.clients == 2 and took < 3


@pytest.mark.slow
@pytest.mark.parametrize("stalling_server", [12], indirect=True)
def test_a_stream_that_stalls_mid_way_is_detected_and_reconnected(stalling_server, caplog):
    """Two sessions that stall after 12 pictures each, then a server that accepts and says nothing: lost,
    reconnected, lost, and given up when the third connection brings no picture (2 failures in a row)."""
    caplog.set_level(logging.WARNING)
    text = network_graph(stalling_server.url, read_timeout_s=0.4, reconnect_max_attempts=2, reconnect_delay_s=0.05)
    err, packets, took = run_to_error(text)
    assert "could not connect: no data for 0.4 s (read timeout) (gave up after 2 attempts)" in str(err)
    assert stalling_server.clients == 3 and took < 4
    lines = [r.getMessage() for r in caplog.records if r.name == "framegraph.cam"]
    lost = [m for m in lines if "connection lost: no data for 0.4 s (read timeout); retrying in" in m]
    assert len(lost) == 2 and lost[0].endswith("(attempt 2)") and lost[1].endswith("(attempt 2)"), lines
    assert len([m for m in lines if "reconnected after" in m]) == 1, lines
    assert len(packets) >= 2 and increasing([p.timestamp for p in packets])
    assert packets[-1].timestamp - packets[0].timestamp >= 300_000  # the stall shows in the timestamps
    assert tuple(packets[0].payload.image[24, 10]) == pytest.approx((255, 0, 0), abs=40)  # RGB: red on the left


# ------------------------------------------------------------------------------- the rest of the graph

def test_backoff_never_blocks_other_branches_and_stop_is_immediate(caplog):
    """A camera that is down keeps retrying while a file branch of the same graph runs to its end; then stop()
    ends the graph at once, in the middle of a long backoff."""
    url = f"rtsp://{HOST}:{free_port()}/cam"
    caplog.set_level(logging.WARNING)
    from media import astronaut_pan_clip, require

    graph = Graph.from_string(f"""
outputs: [video, clip]
nodes:
  - calculator: VideoSourceCalculator
    name: cam
    outputs: {{IMAGE: video}}
    options: {{source: "{url}", reconnect_delay_s: 5, reconnect_jitter: 0}}
  - calculator: VideoSourceCalculator
    name: file
    outputs: {{IMAGE: clip}}
    options: {{source: "{require(astronaut_pan_clip)}", max_frames: 30}}
""")
    handle = graph.start(outputs=["video", "clip"])
    clip = list(handle.outputs("clip"))
    assert len(clip) == 30  # the file branch finished while the camera was refused
    deadline = time.monotonic() + 5
    while "reconnecting in" not in handle.stats.row("cam").status and time.monotonic() < deadline:
        time.sleep(0.01)
    status = handle.stats.row("cam").status
    assert status.startswith("reconnecting in ") and "(attempt " in status, status
    assert status == "reconnecting in 5.0 s (attempt 2)"
    start = time.monotonic()
    handle.stop()
    assert handle.wait(2)
    assert time.monotonic() - start < 1.0, "stop() waited for the backoff"


@pytest.mark.slow
def test_ctrl_c_during_a_backoff_exits_at_once(tmp_path):
    import signal
    import subprocess

    url = f"rtsp://{HOST}:{free_port()}/cam"
    log = tmp_path / "stderr.txt"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "pipelines", "face_detect", "--source", url, "--no-display",
                                 "--detections", str(tmp_path / "faces.jsonl"), "--set",
                                 "source.reconnect_delay_s=30", "--set", "source.reconnect_max_delay_s=30",
                                 "--set", "source.reconnect_jitter=0"],
                                cwd=REPO, stderr=err, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while "retrying in 30.0 s (attempt 2)" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 130, log.read_text()
        assert time.monotonic() - start < 2.0, "Ctrl-C waited for the backoff"
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in log.read_text()
    assert (tmp_path / "faces.jsonl").exists()


@pytest.mark.slow
def test_reconnects_leak_no_file_descriptors_or_threads():
    """Many losses and reconnections (a camera that stalls after 3 pictures, every time): each connection's socket
    and the capture thread are gone once the graph has stopped."""
    import os

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    server = StallingMjpegServer(frames=3, streams=1000)
    fds, threads = open_fds(), threading.active_count()
    handle = Graph.from_string(network_graph(server.url, read_timeout_s=0.15, reconnect_delay_s=0.01,
                                             reconnect_max_delay_s=0.01)).start(outputs=["video"])
    deadline = time.monotonic() + 10
    while server.clients < 6 and time.monotonic() < deadline:
        time.sleep(0.02)
    handle.stop()
    assert handle.wait(5) and server.clients >= 6
    server.close()  # its own ends of the connections
    assert threading.active_count() <= threads
    assert open_fds() <= fds, "sockets left open after reconnecting"
