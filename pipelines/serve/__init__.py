"""``run-graph --serve``: a live page of a running graph (its video, its drawing, its per-node figures), a JSON
API and Prometheus metrics. Part of the runtime because it knows nothing but the runtime: a GraphHandle, its plan
and `Frame`. This module imports nothing heavy; aiohttp (the ``serve`` extra) loads with `start_server`.

    from pipelines.serve import ServeOptions, start_server
    server = start_server(handle, ServeOptions(port=8080))
    ...
    server.stop()
"""
from __future__ import annotations

from .options import (ServeError, ServeOptionError, ServeOptions, choose_video_streams, parse_address,
                      resolve_options)

__all__ = ["ServeError", "ServeOptionError", "ServeOptions", "choose_video_streams", "parse_address",
           "resolve_options", "start_server"]


def start_server(handle, options: ServeOptions, video_streams: list[str] | None = None, stream_set=None):
    """Start serving `handle` on a thread of its own; returns the running `LiveServer` (``.url``, ``.stop()``).
    With `stream_set` (a `pipelines.multistream.StreamSet`) it shows every stream's video and lets
    ``/api/streams`` add and remove streams; `handle` is then its first stream's."""
    from .server import LiveServer

    streams = list(video_streams) if video_streams is not None else choose_video_streams(handle.graph.plan,
                                                                                        options.streams)
    return LiveServer(handle, options, streams, stream_set).start()
