"""A browser that stops reading never holds back the graph: its frames are dropped, then it is disconnected."""
from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit

import numpy as np
import pytest
from serve_support import mjpeg_frames, require_serve_extra

require_serve_extra()

GRAPH = """
inputs: [frames]
nodes:
  - calculator: PassThroughCalculator
    name: show
    inputs: {IN: frames}
    outputs: {OUT: shown_video}
"""


@pytest.mark.slow
def test_a_stuck_viewer_costs_the_graph_nothing():
    from pipelines.graph import Graph
    from pipelines.serve import ServeOptions, start_server
    from pipelines.types import Frame

    handle = Graph.from_string(GRAPH).start()
    # Noise compresses badly: each JPEG is ~1 MB, so a reader that stops fills every socket buffer at once.
    server = start_server(handle, ServeOptions(port=0, max_fps=20, write_timeout_s=1.0, jpeg_quality=95),
                          ["shown_video"])
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (720, 1280, 3), np.uint8) for _ in range(4)]
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    parts = urlsplit(server.url)
    stuck.connect((parts.hostname, parts.port))
    stuck.sendall(b"GET /video/shown_video HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # and never read a byte
    feed = server.feeds["shown_video"]
    healthy: list = []
    sends: list[float] = []
    try:
        def feed_graph():
            for i in range(80):  # 4 s at 20 fps
                started = time.perf_counter()
                handle.send("frames", Frame(noise[i % 4], index=i))
                sends.append(time.perf_counter() - started)
                time.sleep(0.05)

        feeder = threading.Thread(target=feed_graph)
        feeder.start()
        time.sleep(0.5)
        assert feed.viewers == 1  # the stuck one is connected and being sent frames
        healthy = mjpeg_frames(server.url + "video/shown_video", count=5)  # another viewer is served meanwhile
        deadline = time.monotonic() + 5
        while feed.viewers and time.monotonic() < deadline:
            time.sleep(0.05)
        dropped_in = time.monotonic()
        feeder.join(10)
    finally:
        stuck.close()
        handle.close_inputs()
        handle.wait(10)
        server.stop()
    assert len(healthy) == 5
    assert feed.viewers == 0 and dropped_in < deadline  # the stuck viewer was disconnected after its timeout
    assert len(sends) == 80 and max(sends) < 0.05, max(sends)  # the graph's input never waited for a browser
    assert handle.stats.row("show").packets_out == 80
