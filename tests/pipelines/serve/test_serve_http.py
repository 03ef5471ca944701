"""The live page's server over real HTTP on loopback: API shapes, metrics, MJPEG, WebSocket, tokens, limits."""
from __future__ import annotations

import http.client
import json
import socket
import time
from urllib.parse import urlsplit

import numpy as np
import pytest
from serve_support import get, mjpeg_frames, require_serve_extra, serve

require_serve_extra()


def test_api_graph_has_nodes_streams_and_edges(live):
    status, headers, body = get(live.url + "api/graph")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    graph = json.loads(body)
    assert [n["name"] for n in graph["nodes"]] == ["source", "show"]
    source, show = graph["nodes"]
    assert source["source"] is True and source["calculator"] == "VideoSourceCalculator"
    assert show["inputs"][0]["stream"] == "input_video" and show["inputs"][0]["queue_size"] > 0
    assert graph["edges"] == [{"from": "source", "to": "show", "stream": "input_video", "tag": "IN",
                               "back_edge": False}]
    assert {s["name"]: s["producer"] for s in graph["streams"]} == {"input_video": "source", "shown_video": "show"}
    assert dict((s["name"], s["type"]) for s in graph["streams"])["input_video"] == "Frame"
    assert graph["video"] == ["shown_video"] and graph["file"] == "live.yaml"


def test_api_stats_rows_carry_every_figure_and_a_status(live):
    status, _, body = get(live.url + "api/stats")
    stats = json.loads(body)
    assert status == 200 and stats["done"] is False and stats["wall_seconds"] > 0
    rows = {r["node"]: r for r in stats["nodes"]}
    assert set(rows) == {"source", "show"}
    for key in ("packets_in", "packets_out", "fps", "latency_p50_ms", "latency_p99_ms", "max_queue", "drops",
                "errors", "status"):
        assert key in rows["show"], key
    assert rows["source"]["status"] == "running" and rows["source"]["packets_out"] > 0


def test_api_streams_lists_the_source_and_the_shown_video(live, running_graph):
    status, _, body = get(live.url + "api/streams")
    streams = json.loads(body)
    assert status == 200
    [source] = streams["sources"]
    assert source["name"] == "source" and source["source"].endswith("clip.mp4") and source["status"] == "running"
    [video] = streams["video"]
    assert video["stream"] == "shown_video" and video["url"] == "/video/shown_video" and video["frames"] > 0


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_changing_streams_is_refused_as_not_implemented(live, method):
    status, _, body = get(live.url + "api/streams", method=method, data=b'{"url": "rtsp://cam/1"}',
                          headers={"Content-Type": "application/json"})
    error = json.loads(body)
    assert status == 501 and error["status"] == 501
    assert "several streams in one process" in error["error"]


def test_a_body_over_the_limit_is_refused_with_413(live):
    status, _, body = get(live.url + "api/streams", method="POST", data=b"x" * (live.options.max_body_bytes + 1))
    assert status == 413 and "too large" in json.loads(body)["error"]


def test_metrics_parse_with_prometheus_client(live):
    from prometheus_client.parser import text_string_to_metric_families

    status, headers, body = get(live.url + "metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    out = {s.labels["node"]: s.value for s in families["framegraph_node_packets_out"].samples
           if s.name.endswith("_total")}
    assert out["source"] > 0 and set(out) == {"source", "show"}
    assert families["framegraph_node_packets_out"].type == "counter"
    assert families["framegraph_node_latency_p99_seconds"].type == "gauge"
    statuses = {(s.labels["node"], s.labels["status"]) for s in families["framegraph_node_status"].samples}
    assert ("source", "running") in statuses
    assert {s.labels["stream"] for s in families["framegraph_video_viewers"].samples} == {"shown_video"}


def test_mjpeg_frames_decode_and_change(live):
    import cv2

    frames = mjpeg_frames(live.url + "video/shown_video", count=4)
    assert len(frames) == 4
    images = [cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_COLOR) for f in frames]
    assert all(image is not None and image.shape == (48, 64, 3) for image in images)
    levels = [int(image.mean()) for image in images]
    assert len(set(levels)) > 1, levels  # the clip's grey level changes every frame


def test_frames_are_encoded_only_while_someone_watches(live):
    feed = live.feeds["shown_video"]
    deadline = time.monotonic() + 3
    while feed.viewers and time.monotonic() < deadline:  # the previous test's connection closing
        time.sleep(0.05)
    published = feed.jpeg_seq
    time.sleep(0.5)
    assert feed.viewers == 0 and feed.jpeg_seq == published
    assert len(mjpeg_frames(live.url + "video/shown_video", count=2)) == 2  # the last one published, then new ones
    assert feed.jpeg_seq > published


@pytest.mark.slow  # about 1.3 s: kept out of the quick subset, which is near its minute
def test_the_encoding_rate_is_capped(running_graph):
    server = serve(running_graph, max_fps=4.0)
    try:
        started = time.monotonic()
        frames = mjpeg_frames(server.url + "video/shown_video", count=5)
        elapsed = time.monotonic() - started
    finally:
        server.stop()
    assert len(frames) == 5 and elapsed > 0.8, elapsed  # 5 frames at 4 per second: at least 1 s less the first


def test_websocket_sends_the_figures(live):
    import asyncio

    import aiohttp

    async def first_message():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(live.url + "ws") as ws:
                return json.loads((await ws.receive(timeout=5)).data)

    message = asyncio.run(first_message())
    assert message["type"] == "stats"
    assert {r["node"] for r in message["stats"]["nodes"]} == {"source", "show"}
    assert message["streams"]["sources"][0]["name"] == "source"


def test_the_page_and_its_files_come_from_the_package(live):
    status, headers, body = get(live.url)
    assert status == 200 and b'<svg id="graph"' in body and b"static/app.js" in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    for name in ("static/app.js", "static/style.css", "static/vendor/dagre.min.js", "static/vendor/LICENSE"):
        assert get(live.url + name)[0] == 200, name


@pytest.mark.parametrize("path", ["/static/../../etc/passwd", "/static/%2e%2e/%2e%2e/etc/passwd",
                                  "/static/..%2f..%2fetc%2fpasswd", "/static/index.html", "/static/vendor/",
                                  "/static//etc/passwd", "/etc/passwd", "/video/..%2f..%2fetc%2fpasswd"])
def test_no_request_names_a_file(live, path):
    parts = urlsplit(live.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    connection.request("GET", path)  # sent as written: no client-side normalisation of '..'
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status == 404, (path, response.status)
    assert b"root:" not in body


def test_unknown_video_stream_is_404(live):
    status, _, body = get(live.url + "video/input_video")
    assert status == 404 and "shown_video" in json.loads(body)["error"]


# ---------------------------------------------------------------- the token

TOKEN = "correct-horse-battery"


@pytest.fixture(scope="module")
def secured(running_graph):
    server = serve(running_graph, token=TOKEN)
    yield server
    server.stop()


@pytest.mark.parametrize("path", ["", "api/graph", "api/stats", "api/streams", "metrics", "video/shown_video",
                                  "static/app.js", "nothing-here"])
def test_a_missing_or_wrong_token_is_refused(secured, path):
    assert get(secured.url + path)[0] == 401
    assert get(secured.url + path + "?token=wrong-token-xx")[0] == 401
    assert get(secured.url + path, headers={"Authorization": "Bearer wrong-token-xx"})[0] == 401
    assert get(secured.url + path, headers={"Authorization": f"Basic {TOKEN}"})[0] == 401


def test_the_right_token_is_accepted_in_the_header_or_the_query(secured):
    assert get(secured.url + "api/stats", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    status, _, body = get(secured.url + f"?token={TOKEN}")
    assert status == 200 and f"static/app.js?token={TOKEN}".encode() in body  # the page's files carry it
    assert get(secured.url + f"static/app.js?token={TOKEN}")[0] == 200
    assert mjpeg_frames(secured.url + f"video/shown_video?token={TOKEN}", count=1)


def test_the_websocket_needs_the_token(secured):
    import asyncio

    import aiohttp

    async def handshake(query: str):
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(secured.url + "ws" + query) as ws:
                    return json.loads((await ws.receive(timeout=5)).data)["type"]
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    assert asyncio.run(handshake("")) == 401
    assert asyncio.run(handshake("?token=wrong-token-xx")) == 401
    assert asyncio.run(handshake(f"?token={TOKEN}")) == "stats"


def _non_loopback_address() -> str | None:
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        return None
    for info in infos:
        address = info[4][0]
        if not address.startswith("127."):
            try:
                with socket.create_server((address, 0)):
                    return address
            except OSError:
                continue
    return None


def test_a_non_loopback_address_gets_a_generated_token(running_graph):
    from pipelines.serve import resolve_options, start_server

    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to listen on")
    options, generated = resolve_options(f"{address}:0")
    assert generated and len(options.token) >= 24
    server = start_server(running_graph, options, ["shown_video"])
    try:
        assert get(server.url + "api/stats")[0] == 401
        assert get(server.url + f"api/stats?token={options.token}")[0] == 200
    finally:
        server.stop()


def test_a_port_in_use_is_one_readable_error(running_graph, live):
    from pipelines.serve import ServeError, ServeOptions, start_server

    with pytest.raises(ServeError, match=rf"--serve 127.0.0.1:{live.port}: cannot listen there"):
        start_server(running_graph, ServeOptions(port=live.port), ["shown_video"])


# ---------------------------------------------------------------- other sites, limits


def test_another_host_name_is_refused_without_a_token(live):
    """DNS rebinding: a site whose name resolves to 127.0.0.1 sends its own name as Host."""
    assert get(live.url + "api/stats", headers={"Host": "evil.example:80"})[0] == 403
    assert get(live.url + "api/stats", headers={"Host": f"localhost:{live.port}"})[0] == 200


def test_a_websocket_from_another_sites_page_is_refused(live):
    import asyncio

    import aiohttp

    async def handshake(origin: str):
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(live.url + "ws", headers={"Origin": origin}) as ws:
                    return json.loads((await ws.receive(timeout=5)).data)["type"]
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    assert asyncio.run(handshake("http://evil.example")) == 403
    assert asyncio.run(handshake(f"http://127.0.0.1:{live.port}")) == "stats"


def test_connections_beyond_the_limit_get_503(running_graph):
    server = serve(running_graph, max_connections=2)
    parts = urlsplit(server.url)
    held = []
    try:
        for _ in range(2):  # two viewers hold their responses open
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
            connection.request("GET", "/video/shown_video")
            assert connection.getresponse().status == 200
            held.append(connection)
        status, _, body = get(server.url + "api/stats")
        assert status == 503 and "too many connections" in json.loads(body)["error"]
    finally:
        for connection in held:
            connection.close()
        server.stop()
