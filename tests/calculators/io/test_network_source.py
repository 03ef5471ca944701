"""Network sources that survive: refused, stalled, killed and restarted servers on loopback.

The fast tests use servers written here (a refused port, a socket that accepts and never answers, an MJPEG
server that stalls mid-stream); the slow ones a real RTSP server (tests/support/rtsp_server.py, GStreamer's) and
Debian's `ffmpeg -listen`, killed and restarted on the same port under a running graph.
"""
import itertools
import json
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

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "support"))  # rtsp_server.py


def increasing(values) -> bool:
    return all(b > a for a, b in itertools.pairwise(values))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def network_graph(url: str, name: str = "cam", **options) -> str:
    opts = ", ".join(f"{k}: {v}" for k, v in {"source": f'"{url}"', **options}.items())
    return f"""
outputs: [video]
nodes:
  - calculator: VideoSourceCalculator
    name: {name}
    outputs: {{IMAGE: video}}
    options: {{{opts}}}
"""


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


def test_reconnect_off_fails_at_the_first_refusal():
    url = f"rtsp://{HOST}:{free_port()}/cam"
    err, _, took = run_to_error(network_graph(url, reconnect="false"))
    assert "could not connect: Connection refused (reconnect is off)" in str(err) and took < 2


@pytest.mark.parametrize("stalling_server", [0], indirect=True)
def test_a_server_that_accepts_and_never_answers_is_cut_by_the_read_timeout(stalling_server):
    text = network_graph(stalling_server.url, read_timeout_s=0.4, reconnect_max_attempts=2, reconnect_delay_s=0.05)
    err, packets, took = run_to_error(text)
    assert "could not connect: no data for 0.4 s (read timeout) (gave up after 2 attempts)" in str(err)
    assert packets == [] and stalling_server.clients == 2 and took < 3


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


# ------------------------------------------------------------------------- a real RTSP server, restarted

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


class Collector:
    """Takes a running graph's `video` packets on a thread of its own, so the test can act meanwhile."""

    def __init__(self, handle):
        self.handle, self.packets, self.error = handle, [], None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            for packet in self.handle.outputs("video"):
                self.packets.append((time.monotonic(), packet))
        except BaseException as exc:
            self.error = exc

    def wait_for(self, count: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.packets) < count:
            assert time.monotonic() < deadline, f"only {len(self.packets)} of {count} packets after {timeout} s"
            assert self.error is None, self.error
            time.sleep(0.02)

    def finish(self) -> list:
        self.handle.stop()
        assert self.handle.wait(10)
        self._thread.join(5)
        return [p for _, p in self.packets]


def cam_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "framegraph.cam"]


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
    import subprocess

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


# ------------------------------------------------------------------------------ other protocols, Ctrl-C

def _ffmpeg(*args) -> "subprocess.Popen":
    import shutil
    import subprocess

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
