"""Helpers of the live-page tests: the test graph, starting a server, real HTTP requests, reading MJPEG."""
from __future__ import annotations

import re
import time
import urllib.error
import urllib.request

import pytest

from tiny_media import make_clip


def require_serve_extra() -> None:
    """Called at the top of each test module here: skip it where the serve or video extra is not installed."""
    pytest.importorskip("aiohttp", reason="the live page needs framegraph[serve] (aiohttp)")
    pytest.importorskip("prometheus_client", reason="the live page needs framegraph[serve] (prometheus-client)")
    pytest.importorskip("av", reason="the test clip needs PyAV (framegraph[video])")
    pytest.importorskip("cv2", reason="JPEG encoding needs OpenCV (framegraph[video])")

CLIP_FPS = 20
GRAPH = """
description: a paced clip, shown as it passes
cli:
  display: show
nodes:
  - calculator: VideoSourceCalculator
    name: source
    outputs: {{IMAGE: input_video}}
    options: {{source: "{clip}", realtime: true}}
  - calculator: PassThroughCalculator
    name: show
    inputs: {{IN: input_video}}
    outputs: {{OUT: shown_video}}
"""


def long_clip(folder, seconds: float):
    """A 64x48 clip whose grey level changes every frame (so consecutive frames differ), paced by realtime."""
    return make_clip(folder / "clip.mp4", int(seconds * CLIP_FPS), fps=CLIP_FPS)


def serve(handle, **options):
    from pipelines.serve import ServeOptions, start_server

    return start_server(handle, ServeOptions(port=0, **options), ["shown_video"])


def get(url: str, headers: dict | None = None, method: str = "GET", data: bytes | None = None, timeout: float = 5):
    """(status, headers, body) of a real HTTP request; an HTTP error status is returned, not raised."""
    request = urllib.request.Request(url, headers=headers or {}, method=method, data=data)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def mjpeg_frames(url: str, count: int, timeout: float = 10.0) -> list[bytes]:
    """The first `count` JPEG parts of a multipart/x-mixed-replace response."""
    frames, buffer = [], b""
    deadline = time.monotonic() + timeout
    with urllib.request.urlopen(url, timeout=timeout) as response:
        assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace; boundary=")
        while len(frames) < count and time.monotonic() < deadline:
            buffer += response.read1(65536)
            while True:
                head = re.search(rb"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: (\d+)\r\n\r\n", buffer)
                if head is None or len(buffer) < head.end() + int(head.group(1)):
                    break
                end = head.end() + int(head.group(1))
                frames.append(buffer[head.end():end])
                buffer = buffer[end:]
    return frames
