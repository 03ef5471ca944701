"""What ``--serve`` was told: the address, whether it needs a token, which streams to show. No aiohttp here, so
``run-graph`` checks these before a graph starts and ``--help`` stays instant."""
from __future__ import annotations

import ipaddress
import secrets
import socket
from dataclasses import dataclass

from ..errors import GraphConfigError, PipelineError

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080


class ServeError(PipelineError, OSError):
    """The live page cannot start: a port in use, the serve extra missing."""


class ServeOptionError(ServeError, GraphConfigError):
    """A --serve option is wrong (the address, the token, a stream): run-graph exits 2, as for a bad --set."""


@dataclass(frozen=True)
class ServeOptions:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    #: Required on every request when set; always set for a non-loopback host.
    token: str | None = None
    #: The most JPEG frames per second each video stream is encoded at while someone watches.
    max_fps: float = 10.0
    #: Graph streams shown as video; empty: chosen from the graph's `cli:` section (see choose_video_streams).
    streams: tuple[str, ...] = ()
    max_connections: int = 64
    max_body_bytes: int = 64 * 1024
    #: A browser that takes longer than this to accept one frame or message is disconnected.
    write_timeout_s: float = 10.0
    jpeg_quality: int = 80
    #: With several streams in one process: URL prefixes POST /api/streams may add (empty: network URLs only).
    allow_sources: tuple[str, ...] = ()

    def __post_init__(self):
        if not 0 <= self.port <= 65535:
            raise ServeOptionError(f"--serve: port must be 0..65535, got {self.port}")
        if not self.max_fps > 0:
            raise ServeOptionError(f"--serve-fps must be > 0, got {self.max_fps}")
        if self.token is not None and len(self.token) < 8:
            raise ServeOptionError("--serve-token must be at least 8 characters")

    @property
    def url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host


def parse_address(text: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT``, ``[IPv6]:PORT`` or ``HOST`` alone (port 8080)."""
    text = text.strip()
    host, port = DEFAULT_HOST, str(DEFAULT_PORT)
    if text.startswith("["):
        inside, _, rest = text[1:].partition("]")
        host, port = inside, (rest[1:] if rest.startswith(":") else rest or port)
    elif text.count(":") == 1:
        host, port = text.split(":")
        host = host or DEFAULT_HOST
    elif text.isdigit():
        port = text
    elif text:
        host = text
    if not port.isdigit():
        raise ServeOptionError(f"--serve {text}: expected [HOST:]PORT such as 8080 or 0.0.0.0:8080, "
                               f"got port '{port}'")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback one (a name that does not resolve is not)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def resolve_options(address: str, token: str | None = None, max_fps: float = 10.0,
                    streams: tuple[str, ...] = ()) -> tuple[ServeOptions, bool]:
    """The options for `address`; a non-loopback host without a token gets a generated one. Returns the options
    and whether the token was generated (the caller prints it once)."""
    host, port = parse_address(address)
    generated = False
    if token is None and not is_loopback(host):
        token, generated = secrets.token_urlsafe(24), True
    return ServeOptions(host=host, port=port, token=token, max_fps=max_fps, streams=tuple(streams)), generated


def choose_video_streams(plan, requested: tuple[str, ...] = ()) -> list[str]:
    """The streams the page shows: those asked for; else the graph's ``cli: serve:`` streams; else the image
    streams into the nodes its ``cli: display:`` and ``cli: output:`` entries name (the annotated video, whether
    or not those nodes are enabled); else its ``cli: progress:`` stream; else every image stream."""
    from ..types import Frame

    known = set(plan.producers)
    if requested:
        unknown = [s for s in requested if s not in known]
        if unknown:
            raise ServeOptionError(f"--serve-stream: no stream named {', '.join(map(repr, unknown))} in "
                             f"{plan.config.file or 'the graph'}; streams: {', '.join(sorted(known))}")
        return list(dict.fromkeys(requested))
    cli = plan.config.cli

    def is_image(stream: str) -> bool:
        tp = plan.producers.get(stream, (None, None))[1]
        return isinstance(tp, type) and issubclass(tp, Frame)

    declared = [s for s in cli.get("serve", []) if s in known]
    if declared:
        return list(dict.fromkeys(declared))
    found: list[str] = []
    for key in ("display", "output"):
        names = {target.partition(".")[0] for target in cli.get(key, [])}
        for node in plan.config.nodes:
            if node.name in names or any(node.name.startswith(n + "/") for n in names):
                found += [ref.stream for refs in node.inputs.values() for ref in refs
                          if not ref.back_edge and is_image(ref.stream)]
    if not found:
        found = [s for s in cli.get("progress", []) if s in known and is_image(s)]
    if not found:
        found = [s for s in plan.producers if is_image(s)]
    return list(dict.fromkeys(found))
