"""``/api/streams`` POST and DELETE for a run of several streams (`pipelines.multistream.StreamSet`).

A POST names a stream and a URL only: never a file to read, options or a path to write (the outputs follow the
command line's ``{stream}`` templates). Without ``--allow-source`` only network URLs are taken; with it, only
URLs (or paths) that start with one of its prefixes.
"""
from __future__ import annotations

import asyncio
import json
import os
import re

from ..errors import PipelineError
from ..multistream import StreamError, StreamSpec, allowed
from .api import redact

#: What a POST may name without an allowed list: network streams, never a local file, device or camera index.
NETWORK_URL = re.compile(r"^(rtsps?|rtmps?|https?|udp|srt|tcp)://[^\s]+$", re.IGNORECASE)


def refusal(url: str, prefixes: tuple[str, ...]) -> str | None:
    """Why `url` may not be added over HTTP, or None."""
    if prefixes:
        if "://" not in url:  # a file: compared once resolved, so ../ or a link cannot leave an allowed folder
            if not os.path.isabs(url):
                return "a file added over HTTP is named by its absolute path"
            real = os.path.realpath(url)
            folders = [os.path.realpath(p) for p in prefixes if "://" not in p]
            if not any(real == f or real.startswith(f.rstrip(os.sep) + os.sep) for f in folders):
                return f"source '{url}' is outside the allowed list (--allow-source)"
            return None
        if not allowed(url, prefixes):
            return f"source '{redact(url)}' is outside the allowed list (--allow-source)"
        return None
    if not NETWORK_URL.match(url):
        return ("only network URLs (rtsp://, http(s)://, ...) may be added over HTTP; files, devices and cameras "
                "need --allow-source")
    return None


def describe_streams(stream_set) -> list[dict]:
    rows = stream_set.describe()
    for row in rows:
        row["url"] = redact(row["url"])
    return rows


async def change(stream_set, prefixes: tuple[str, ...], request, pool, error, json_response):
    """POST ``{"name": ..., "url": ...}`` adds a stream (201); DELETE ``/api/streams/NAME`` removes one."""
    loop = asyncio.get_running_loop()
    if request.method == "DELETE":
        name = request.match_info.get("name")
        if not name:
            return error(400, "DELETE /api/streams/NAME names the stream to remove")
        try:
            await loop.run_in_executor(pool, stream_set.remove, name)
        except StreamError as exc:
            return error(404, str(exc))
        return json_response({"removed": name})
    if request.match_info.get("name"):
        return error(405, "POST /api/streams with {\"name\": ..., \"url\": ...} adds a stream")
    try:
        body = json.loads(await request.read() or b"null")
    except ValueError:
        return error(400, "the body must be JSON: {\"name\": \"cam2\", \"url\": \"rtsp://...\"}")
    if not isinstance(body, dict) or not isinstance(body.get("url"), str) or not isinstance(body.get("name"), str):
        return error(400, "the body must be {\"name\": \"cam2\", \"url\": \"rtsp://...\"} (both strings)")
    extra = sorted(set(body) - {"name", "url"})
    if extra:
        return error(400, f"unknown key {', '.join(map(repr, extra))}: a stream is added with name and url only")
    why = refusal(body["url"], prefixes)
    if why:
        return error(403, why)
    try:
        spec = StreamSpec(body["name"], body["url"])
        await loop.run_in_executor(pool, stream_set.add, spec)
    except StreamError as exc:
        return error(409 if "exists already" in str(exc) else 400, str(exc))
    except PipelineError as exc:  # the stream's graph did not validate or open
        return error(400, f"stream '{body['name']}': {' '.join(str(exc).split())}")
    return json_response({"added": spec.name, "streams": describe_streams(stream_set)}, status=201)
