"""The latest frame of each shown stream, JPEG-encoded for the page only while someone watches, at a capped rate.

The graph's side is one observer per stream that keeps a reference to the newest payload (it runs under the
scheduler's lock, so it does nothing else). Everything else runs on the server's loop: one encoder task per
stream wakes at most `max_fps` times a second while it has viewers, encodes on a worker thread (OpenCV releases
the GIL), and publishes the bytes; each viewer sends the newest published frame when it is ready for one, so a
slow viewer skips frames instead of queueing them, and no viewer can hold back the graph.
"""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor

import numpy as np


def image_of(payload) -> np.ndarray | None:
    """The HxWx3 uint8 RGB image in a payload (a Frame, or such an array), or None."""
    image = getattr(payload, "image", payload)
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return image
    return None


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    import cv2

    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    return data.tobytes()


class VideoFeed:
    """One graph stream as seen by the page."""

    def __init__(self, stream: str):
        self.stream = stream
        # Written by the graph's thread only; read by the loop (a reference swap, no lock needed).
        self._payload = None
        self._received = 0
        self.ended = False
        # The loop's side.
        self.jpeg: bytes | None = None
        self.jpeg_seq = 0  # frames published
        self.encoded_from = 0  # `_received` when the published frame was taken
        self.width = self.height = 0
        self.viewers = 0
        self._changed: asyncio.Condition | None = None
        self._wanted: asyncio.Event | None = None

    # ---------------------------------------------------------------- the graph's thread
    def on_packet(self, packet) -> None:
        if packet is None:
            self.ended = True
            return
        self._payload = packet.payload
        self._received += 1

    @property
    def frames_received(self) -> int:
        return self._received

    # ---------------------------------------------------------------- the server's loop
    def bind(self) -> None:
        self._changed = asyncio.Condition()
        self._wanted = asyncio.Event()

    def add_viewer(self) -> None:
        self.viewers += 1
        self._wanted.set()

    def remove_viewer(self) -> None:
        self.viewers -= 1
        if self.viewers <= 0:
            self.viewers = 0
            self._wanted.clear()

    async def next_frame(self, after: int) -> tuple[int, bytes] | None:
        """The newest published frame later than number `after`, waiting for one; None once the stream ended."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.jpeg_seq > after or self.ended)
            if self.jpeg_seq > after and self.jpeg is not None:
                return self.jpeg_seq, self.jpeg
            return None

    async def wake(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def run_encoder(self, pool: Executor, max_fps: float, quality: int) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / max_fps
        while not self.ended:
            await self._wanted.wait()
            started = time.monotonic()
            received, payload = self._received, self._payload
            image = image_of(payload) if received != self.encoded_from else None
            if image is not None:
                jpeg = await loop.run_in_executor(pool, encode_jpeg, image, quality)
                async with self._changed:
                    self.jpeg, self.encoded_from = jpeg, received
                    self.height, self.width = image.shape[:2]
                    self.jpeg_seq += 1
                    self._changed.notify_all()
            await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))
        await self.wake()

    def describe(self) -> dict:
        return {"stream": self.stream, "url": f"/video/{self.stream}", "frames": self._received,
                "width": self.width, "height": self.height, "viewers": self.viewers, "ended": self.ended}
