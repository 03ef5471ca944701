"""The live page's HTTP server: aiohttp on a thread of its own with its own event loop.

It reads the graph only through the public GraphHandle (``observe`` for frames, ``stats`` for the figures), so a
slow or stuck browser costs the graph nothing: frames are dropped for it, never queued, and a browser that
does not take a frame or message within `write_timeout_s` is disconnected.
"""
from __future__ import annotations

import asyncio
import hmac
import html
import json
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from urllib.parse import quote, urlsplit

from .api import GraphCollector, graph_json, sources_json, stats_json
from .frames import VideoFeed
from .options import ServeError, ServeOptions
from .streams_api import change as change_streams
from .streams_api import describe_streams

try:
    from aiohttp import WSMsgType, web
except ImportError as exc:  # pragma: no cover - the message is what matters
    raise ServeError("--serve needs the serve extra: pip install 'framegraph[serve]' (aiohttp, prometheus-client)") \
        from exc

log = logging.getLogger("framegraph.serve")

#: Every file the page may load: names map to package files read once at start; no request names a path.
STATIC = {"app.js": ("app.js", "text/javascript"), "style.css": ("style.css", "text/css"),
          "vendor/dagre.min.js": ("vendor/dagre.min.js", "text/javascript"),
          "vendor/LICENSE": ("vendor/LICENSE", "text/plain")}
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; connect-src 'self'; "
                                           "style-src 'self'; script-src 'self'; frame-ancestors 'none'",
                "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
STATS_PERIOD_S = 1.0
BOUNDARY = "frame"


class LiveServer:
    """Serves a running graph's page, API and metrics until `stop()`.

        server = LiveServer(handle, ServeOptions(port=0), ["output_video"]).start()
        print(server.url)
        ...
        server.stop()
    """

    def __init__(self, handle, options: ServeOptions, video_streams: list[str], stream_set=None):
        self.handle = handle  # with a stream set: its first stream's, for the drawing and the node table
        self.options = options
        self.stream_set = stream_set
        self._video_streams = list(video_streams)
        self.feeds: dict[str, VideoFeed] = {}
        if stream_set is None:
            self._watch(None, handle)
        else:  # feeds named STREAM.GRAPH_STREAM (cam0.output_video); streams added later get theirs then
            for name, stream_handle in stream_set.handles().items():
                self._watch(name, stream_handle)
            stream_set.add_listener(self._on_stream_change)
        self._plan = handle.graph.plan
        self._graph_json = graph_json(self._plan, list(self.feeds))
        root = resources.files(__package__) / "static"
        self._index = (root / "index.html").read_text(encoding="utf-8")
        self._static = {name: ((root / path).read_bytes(), ctype) for name, (path, ctype) in STATIC.items()}
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="framegraph-serve-work")
        self._snapshot_cache: tuple[float, object, bool] | None = None
        self._snapshot_lock = threading.Lock()
        self._active = 0
        self._sockets: dict = {}  # open WebSockets -> the task sending them figures
        self._tasks: list[asyncio.Task] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self.port = options.port

    def _watch(self, name: str | None, handle) -> list[VideoFeed]:
        feeds = []
        for stream in self._video_streams:
            feed = self.feeds[stream if name is None else f"{name}.{stream}"] = VideoFeed(
                stream if name is None else f"{name}.{stream}")
            handle.observe(stream, feed.on_packet)
            feeds.append(feed)
        return feeds

    def _on_stream_change(self, event: str, name: str, handle) -> None:
        """A StreamSet listener (any thread): a stream's feeds are made, or ended, on the server's loop."""
        loop = self._loop
        if loop is None or not loop.is_running():
            return
        loop.call_soon_threadsafe(self._attach if event == "added" else self._detach, name, handle)

    def _attach(self, name: str, handle) -> None:
        for feed in self._watch(name, handle):
            feed.bind()
            self._tasks.append(asyncio.create_task(feed.run_encoder(self._pool, self.options.max_fps,
                                                                    self.options.jpeg_quality)))

    def _detach(self, name: str, handle) -> None:
        for key in [k for k in self.feeds if k.startswith(name + ".")]:
            feed = self.feeds.pop(key)
            feed.ended = True
            asyncio.create_task(feed.wake())

    # ---------------------------------------------------------------- lifecycle (the caller's thread)
    @property
    def url(self) -> str:
        return f"http://{self.options.url_host}:{self.port}/"

    def start(self, timeout: float = 10.0) -> "LiveServer":
        self._thread = threading.Thread(target=self._thread_main, name="framegraph-serve", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise ServeError(f"--serve {self.options.host}:{self.options.port}: the server did not start "
                             f"within {timeout:.0f} s")
        if self._start_error is not None:
            self._pool.shutdown(wait=False)
            raise self._start_error
        return self

    def stop(self, timeout: float = 5.0) -> None:
        loop = self._loop
        if loop is None or not loop.is_running():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout)
        except Exception as exc:  # a server that will not stop must not keep the process: it is a daemon thread
            log.warning("the live page did not stop cleanly: %s", exc)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout)
        self._pool.shutdown(wait=False)

    def _thread_main(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:
            self._start_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _startup(self) -> None:
        opts = self.options
        try:
            family = socket.getaddrinfo(opts.host, opts.port, type=socket.SOCK_STREAM)[0][0]
            sock = socket.create_server((opts.host, opts.port), family=family, backlog=opts.max_connections)
        except OSError as exc:
            raise ServeError(f"--serve {opts.host}:{opts.port}: cannot listen there: {exc.strerror or exc}") from exc
        self.port = sock.getsockname()[1]
        app = web.Application(client_max_size=opts.max_body_bytes, middlewares=[self._guard])
        app.router.add_get("/", self._page)
        app.router.add_get("/static/{name:.+}", self._static_file)
        app.router.add_get("/video/{stream}", self._video)
        app.router.add_get("/api/graph", self._api_graph)
        app.router.add_get("/api/stats", self._api_stats)
        app.router.add_get("/api/streams", self._api_streams)
        app.router.add_post("/api/streams", self._api_streams_change)
        app.router.add_delete("/api/streams", self._api_streams_change)
        app.router.add_delete("/api/streams/{name}", self._api_streams_change)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/ws", self._websocket)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, keepalive_timeout=15.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        for feed in self.feeds.values():
            feed.bind()
            self._tasks.append(asyncio.create_task(feed.run_encoder(self._pool, opts.max_fps, opts.jpeg_quality)))

    async def _shutdown(self) -> None:
        for feed in list(self.feeds.values()):
            feed.ended = True
            await feed.wake()
        for sender in self._sockets.values():
            sender.cancel()
        if self._sockets:  # the final figures (every node ended), so an open page shows how the run finished
            self._snapshot_cache = None
            final = json.dumps(await self._live_json())
            for ws in list(self._sockets):
                try:
                    await asyncio.wait_for(ws.send_str(final), 1.0)
                except (ConnectionError, asyncio.TimeoutError):
                    pass
        for ws in list(self._sockets):
            await ws.close(message=b"graph ended")
        for task in self._tasks:
            task.cancel()
        await self._runner.cleanup()

    # ---------------------------------------------------------------- every request
    @web.middleware
    async def _guard(self, request, handler):
        if self._active >= self.options.max_connections:
            return _error(503, f"too many connections (at most {self.options.max_connections})")
        token = self.options.token
        if token is None and not self._host_allowed(request):
            # Without a token only loopback is served; a page elsewhere whose name resolves to 127.0.0.1 (DNS
            # rebinding) sends its own name as Host and is refused.
            return _error(403, f"Host '{request.host}' is not this server's loopback address")
        if request.path == "/ws" and not _same_origin(request):
            return _error(403, "a WebSocket from another site's page is refused")
        if token is not None and not _token_matches(request, token):
            if request.path == "/":
                return web.Response(status=401, content_type="text/html", headers=PAGE_HEADERS,
                                    text="<!doctype html><title>framegraph: token required</title><h1>401: token "
                                         "required</h1><p>Open this page with <code>?token=...</code> as printed "
                                         "by run-graph.</p>")
            return _error(401, "a valid token is required (Authorization: Bearer TOKEN, or ?token=TOKEN)")
        if request.content_length is not None and request.content_length > self.options.max_body_bytes:
            return _error(413, f"request body too large (at most {self.options.max_body_bytes} bytes)")
        self._active += 1
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status >= 400:
                return _error(exc.status, exc.reason)
            raise
        finally:
            self._active -= 1

    def _host_allowed(self, request) -> bool:
        host = _hostname(request.host)
        return host in ("localhost", "127.0.0.1", "::1", self.options.host) or host.startswith("127.")

    # ---------------------------------------------------------------- the page
    async def _page(self, request):
        query = "?token=" + quote(self.options.token, safe="") if self.options.token else ""
        text = self._index.replace("__QUERY__", html.escape(query, quote=True))
        return web.Response(text=text, content_type="text/html", headers=PAGE_HEADERS)

    async def _static_file(self, request):
        found = self._static.get(request.match_info["name"])
        if found is None:
            return _error(404, "no such file")
        body, ctype = found
        return web.Response(body=body, content_type=ctype, headers={"X-Content-Type-Options": "nosniff"})

    async def _video(self, request):
        feed = self.feeds.get(request.match_info["stream"])
        if feed is None:
            return _error(404, f"no video stream '{request.match_info['stream']}'; shown: {', '.join(self.feeds)}")
        response = web.StreamResponse(headers={"Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                                               "Cache-Control": "no-store", **_NO_SNIFF})
        await response.prepare(request)
        feed.add_viewer()
        seq = 0
        try:
            while True:
                got = await feed.next_frame(seq)
                if got is None:
                    break
                seq, jpeg = got
                part = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                        + jpeg + b"\r\n")
                await asyncio.wait_for(response.write(part), self.options.write_timeout_s)
        except (ConnectionError, asyncio.TimeoutError):
            pass  # the browser left or stalled: it is dropped, the graph never waited for it
        finally:
            feed.remove_viewer()
        return response

    # ---------------------------------------------------------------- the API
    def _snapshot(self):
        """The graph's stats, computed at most twice a second however many browsers and scrapers ask."""
        with self._snapshot_lock:
            now = time.monotonic()
            cached = self._snapshot_cache
            if cached is None or now - cached[0] > STATS_PERIOD_S / 2:
                cached = self._snapshot_cache = (now, self.handle.stats, self.handle.done)
            return cached[1], cached[2]

    async def _snapshot_async(self):
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._snapshot)

    async def _live_json(self) -> dict:
        stats, done = await self._snapshot_async()
        return {"type": "stats", "stats": stats_json(stats, done), "streams": self._streams_json(stats, done)}

    def _streams_json(self, stats, done) -> dict:
        video = [feed.describe() for feed in list(self.feeds.values())]
        if self.stream_set is None:
            return {"sources": sources_json(self._plan, stats, done), "video": video}
        sources = []
        for name, handle in self.stream_set.handles().items():
            # A stream's sources, each named STREAM.NODE; the figures of streams other than the first are read
            # here (GET /api/streams and the page, about once a second).
            own = stats if handle is self.handle else handle.stats
            for row in sources_json(handle.graph.plan, own, handle.done):
                sources.append({**row, "name": f"{name}.{row['name']}", "stream": name})
        return {"sources": sources, "video": video, "streams": describe_streams(self.stream_set)}

    async def _api_graph(self, request):
        return web.json_response(self._graph_json)

    async def _api_stats(self, request):
        stats, done = await self._snapshot_async()
        body = stats_json(stats, done)
        if self.stream_set is not None:
            handles = self.stream_set.handles()
            body["streams"] = await asyncio.get_running_loop().run_in_executor(
                self._pool, lambda: {n: stats_json(h.stats, h.done) for n, h in handles.items()})
        return web.json_response(body)

    async def _api_streams(self, request):
        stats, done = await self._snapshot_async()
        return web.json_response(self._streams_json(stats, done))

    async def _api_streams_change(self, request):
        if self.stream_set is not None:
            return await change_streams(self.stream_set, self.options.allow_sources, request, self._pool, _error,
                                        lambda body, status=200: web.json_response(body, status=status,
                                                                                   headers=_NO_SNIFF))
        await request.read()  # bounded by client_max_size: a body too large is refused with 413
        return _error(501, "adding or removing streams needs several streams in one process (run-graph with "
                           "--source repeated, or --sources FILE); this run has one; GET /api/streams lists it")

    async def _metrics(self, request):
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        streams = None
        if self.stream_set is not None:
            handles = self.stream_set.handles()
            streams = lambda: {n: (h.stats, h.done) for n, h in handles.items()}  # noqa: E731  read on the pool
        registry.register(GraphCollector(self._snapshot, list(self.feeds.values()), streams))
        body = await asyncio.get_running_loop().run_in_executor(self._pool, generate_latest, registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _websocket(self, request):
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4096)
        await ws.prepare(request)
        sender = self._sockets[ws] = asyncio.create_task(self._send_stats(ws))
        try:
            async for msg in ws:  # the page sends nothing; reading keeps pings and the close handshake going
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            sender.cancel()
            self._sockets.pop(ws, None)
        return ws

    async def _send_stats(self, ws) -> None:
        try:
            while not ws.closed:
                payload = await self._live_json()
                await asyncio.wait_for(ws.send_str(json.dumps(payload)), self.options.write_timeout_s)
                await asyncio.sleep(STATS_PERIOD_S)
        except (ConnectionError, asyncio.TimeoutError):
            await ws.close()


_NO_SNIFF = {"X-Content-Type-Options": "nosniff"}


def _token_matches(request, token: str) -> bool:
    auth = request.headers.get("Authorization", "")
    given = auth[7:].strip() if auth.startswith("Bearer ") else request.query.get("token")
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def _hostname(host_header: str) -> str:
    """The name in a Host header without its port (``[::1]:8080`` -> ``::1``)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _same_origin(request) -> bool:
    """Browsers send Origin with a WebSocket handshake; WebSockets are not bound by CORS, so a page on another
    site could otherwise read the figures. No Origin: not a browser (a script), nothing to protect."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == request.host.lower()


def _error(status: int, message: str):
    return web.json_response({"error": message, "status": status}, status=status, headers=_NO_SNIFF)
