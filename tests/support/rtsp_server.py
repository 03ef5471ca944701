"""A real RTSP server for the tests: GStreamer's RTSP server (Debian's gir1.2-gst-rtsp-server-1.0, python3-gi,
gstreamer1.0-plugins-{base,good,ugly}) on 127.0.0.1, serving a live H.264 stream at rtsp://127.0.0.1:PORT/cam.

    /usr/bin/python3 tests/support/rtsp_server.py --port 8554 [--image face.png] [--fps 15]

It runs with the system Python (where `gi` lives), never the test venv; `RtspServer` below starts it in a
subprocess on a free port and waits until it answers. The stream is a still image (a face, so detectors find
one) or GStreamer's moving test pattern, encoded live with a keyframe every second so a client that reconnects
gets a picture at once. The server exits by itself when its parent goes away or after --lifetime-s.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"
SYSTEM_PYTHON = "/usr/bin/python3"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def unavailable_reason() -> str | None:
    """Why the server cannot run here, or None. Checked by running the import in the system Python."""
    if not os.path.exists(SYSTEM_PYTHON):
        return f"{SYSTEM_PYTHON} not found (the RTSP server runs with the system Python's gi)"
    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
             "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
             "missing = [e for e in ('x264enc', 'rtph264pay', 'pngdec', 'imagefreeze', 'videotestsrc')"
             " if Gst.ElementFactory.find(e) is None]; print(' '.join(missing))")
    try:
        proc = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the system Python could not probe GStreamer: {exc}"
    if proc.returncode != 0:
        return ("GStreamer's RTSP server is not installed (apt-get install gir1.2-gst-rtsp-server-1.0 python3-gi "
                f"gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly): {proc.stderr.strip().splitlines()[-1:]}")
    if proc.stdout.strip():
        return f"GStreamer elements missing: {proc.stdout.strip()} (gstreamer1.0-plugins-good/-ugly/-bad)"
    return None


class RtspServer:
    """The server in a subprocess on one loopback port that survives `kill` + `start` (a restarted camera keeps
    its address). `pause` (SIGSTOP) leaves its sockets open and silent, as a hung camera would."""

    def __init__(self, image: str | None = None, fps: int = 15, port: int | None = None, timeout_s: float = 20.0,
                 lifetime_s: float | None = None):
        self.image, self.fps, self.timeout_s = image, fps, timeout_s
        self.lifetime_s = lifetime_s  # None: the server's own limit (600 s), enough for a test
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"rtsp://{HOST}:{self.port}/cam"

    def start(self) -> RtspServer:
        args = [SYSTEM_PYTHON, __file__, "--port", str(self.port), "--fps", str(self.fps)]
        if self.image:
            args += ["--image", str(self.image)]
        if self.lifetime_s is not None:
            args += ["--lifetime-s", str(self.lifetime_s)]
        # A file, not a pipe: nobody reads it while the server runs, and a full pipe would block it. One at a time:
        # a soak restarts the server for half an hour.
        if self._log is not None:
            self._log.close()
        self._log = tempfile.TemporaryFile("w+")
        # A clean environment: the venv's PYTHONPATH or GST variables must not reach the system Python.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, text=True, env=env)
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"RTSP server exited with {self.process.returncode}:\n{self.output()}")
            if "ready" in self.output():
                return self
            time.sleep(0.05)
        output = self.output()
        self.stop()
        raise TimeoutError(f"RTSP server on port {self.port} not ready after {self.timeout_s:.0f} s:\n{output}")

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut would; returns once the process is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=5)

    def pause(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    def output(self) -> str:
        if self._log is None or self._log.closed:
            return ""
        self._log.seek(0)
        return self._log.read()[-3000:]

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        if self._log is not None:
            self._log.close()


def ffmpeg_http_server(clip: str, port: int, fmt: str = "mpjpeg") -> subprocess.Popen:
    """Debian's ffmpeg serving `clip` (looped, at its own rate) to one HTTP client on 127.0.0.1:PORT/live:
    `mpjpeg` is an MJPEG camera's multipart stream, `mpegts` a progressive live stream. Returns the process."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise FileNotFoundError("ffmpeg is not installed (apt-get install ffmpeg)")
    codec = ["-c:v", "mjpeg", "-q:v", "5"] if fmt == "mpjpeg" else ["-c:v", "libx264", "-preset", "ultrafast",
                                                                      "-tune", "zerolatency", "-g", "15"]
    return subprocess.Popen([ffmpeg, "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", clip,
                             "-an", *codec, "-f", fmt, "-listen", "1", f"http://{HOST}:{port}/live"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# ---------------------------------------------------------------------- the server itself (system Python)

def _launch_line(image: str | None, fps: int) -> str:
    if image:
        source = (f'filesrc location="{image}" ! pngdec ! videoconvert ! imagefreeze is-live=true ! '
                  f"video/x-raw,framerate={fps}/1")
    else:
        source = f"videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate={fps}/1"
    # sliced-threads=false: with zerolatency's several slices per picture, FFmpeg's RTSP client loses parts of
    # each picture from this payloader (green P-frames), which would look like a decoder bug on our side.
    return (f"( {source} ! videoconvert ! video/x-raw,format=I420 ! "
            f"x264enc tune=zerolatency sliced-threads=false speed-preset=ultrafast key-int-max={fps} ! "
            "rtph264pay name=pay0 pt=96 config-interval=-1 )")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--image", help="a PNG to stream as a still picture (default: a moving test pattern)")
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--lifetime-s", type=float, default=600.0)
    args = parser.parse_args()

    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(HOST)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(_launch_line(args.image, args.fps))
    factory.set_shared(True)  # every client sees the one live pipeline, as with a camera
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        sys.exit(f"could not listen on {HOST}:{args.port}")
    loop = GLib.MainLoop()
    parent, started = os.getppid(), time.monotonic()

    def watchdog() -> bool:
        if os.getppid() != parent or time.monotonic() - started > args.lifetime_s:
            loop.quit()
        return True

    GLib.timeout_add(500, watchdog)
    print(f"ready rtsp://{HOST}:{args.port}/cam", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
