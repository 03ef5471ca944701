"""A real graph (a paced clip through a pass-through node) served on a free loopback port, shared by a module."""
from __future__ import annotations

import time

import pytest
from serve_support import GRAPH, long_clip, serve


@pytest.fixture(scope="module")
def running_graph(tmp_path_factory):
    from pipelines.graph import Graph

    clip = long_clip(tmp_path_factory.mktemp("serve"), seconds=60)
    handle = Graph.from_string(GRAPH.format(clip=clip), filename="live.yaml").start()
    yield handle
    handle.cancel()
    try:
        handle.wait(10)
    except Exception:
        pass


@pytest.fixture(scope="module")
def live(running_graph):
    server = serve(running_graph)
    # The graph started before the server: on a busy machine its first frame can come after the first test.
    deadline = time.monotonic() + 15
    while not server.feeds["shown_video"].frames_received and time.monotonic() < deadline:
        time.sleep(0.02)
    yield server
    server.stop()
