"""A real graph (a paced clip through a pass-through node) served on a free loopback port, shared by a module."""
from __future__ import annotations

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
    yield server
    server.stop()
