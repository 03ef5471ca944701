"""Streams and the bounded input queues they feed. All methods run under the runner's lock."""
from __future__ import annotations

from collections import deque
from typing import Any, Callable

from .errors import TimestampError
from .packet import DONE, MAX_TIMESTAMP, Packet


class InputQueue:
    """One consumer's queue on one stream, with the stream's timestamp bound as this consumer sees it."""

    __slots__ = ("node", "tag", "index", "stream", "back_edge", "maxsize", "overflow", "items", "bound",
                 "max_depth", "drops", "discarding", "throttles", "held", "timing_only")

    def __init__(self, node, tag: str, index: int, stream: str, back_edge: bool, maxsize: int, overflow: str):
        self.node = node
        self.tag = tag
        self.index = index
        self.stream = stream
        self.back_edge = back_edge
        self.maxsize = maxsize
        self.overflow = overflow
        self.items: deque[Packet] = deque()
        self.bound = 0  # no packet earlier than this can still arrive
        self.max_depth = 0
        self.drops = 0
        self.discarding = False  # the consumer stopped early: accept and forget
        #: A full queue of this kind holds its producer back instead of dropping.
        self.throttles = overflow == "block" and not back_edge
        #: Packets a running batch took off the front beyond its first (see NodeRuntime.take_batch): still
        #: counted as queued, so a producer sees the same room as if the consumer took one at a time.
        self.held = 0
        self.timing_only = False  # the consumer's port reads only timestamps (Input.timing()); set when wired

    @property
    def full(self) -> bool:
        return len(self.items) + self.held >= self.maxsize

    @property
    def closed(self) -> bool:
        return self.bound >= DONE

    def push(self, packet: Packet) -> None:
        if self.discarding:
            return
        items = self.items
        if len(items) >= self.maxsize:
            if self.overflow == "drop_oldest":
                items.popleft()
                self.drops += 1
            elif self.overflow == "drop_newest":
                self.drops += 1
                return
        items.append(packet)
        if len(items) > self.max_depth:
            self.max_depth = len(items)

    def next_timestamp(self) -> int:
        """The earliest timestamp this input could still deliver."""
        return self.items[0].timestamp if self.items else self.bound


class Stream:
    """A named stream: one producer, any number of consumer queues and observers."""

    __slots__ = ("name", "producer", "consumers", "observers", "bound", "content_readers")

    def __init__(self, name: str, producer: str):
        self.name = name
        self.producer = producer
        self.consumers: list[InputQueue] = []
        self.observers: list[Callable[[Packet | None], Any]] = []  # called with None at close
        self.bound = 0
        #: Consumers and observers that read the packets' content, not only their timestamps.
        self.content_readers = 0

    def emit(self, packet: Packet) -> None:
        ts = packet.timestamp
        if ts < self.bound or ts > MAX_TIMESTAMP:
            self._refuse(ts)
        self.bound = ts + 1
        for q in self.consumers:
            items = q.items
            depth = len(items)
            if depth < q.maxsize and not q.discarding:  # the common case, inlined: this is the hot path
                items.append(packet)
                if depth >= q.max_depth:
                    q.max_depth = depth + 1
            else:
                q.push(packet)
            if q.bound <= ts:
                q.bound = ts + 1
        for observe in self.observers:
            observe(packet)

    def _refuse(self, ts: int) -> None:
        name = self.name
        if ts > MAX_TIMESTAMP:  # first: a packet at DONE must not slip through as "the next allowed one"
            raise TimestampError(f"stream '{name}': timestamp {ts} is at or past the end-of-stream sentinel "
                                 f"(largest allowed: {MAX_TIMESTAMP})")
        if self.bound >= DONE:
            raise TimestampError(f"stream '{name}': packet at {ts} sent after the stream was closed")
        if ts < 0:
            raise TimestampError(f"stream '{name}': timestamp {ts} is negative; timestamps are integer "
                                 f"microseconds from 0 to {MAX_TIMESTAMP}")
        raise TimestampError(
            f"stream '{name}': timestamp {ts} is not greater than the previous one "
            f"(next allowed: {self.bound}); timestamps must strictly increase on every stream")

    def promise(self, bound: int) -> bool:
        """A calculator's ``set_next_timestamp_bound``: like `raise_bound`, but a bound past DONE is an error
        rather than a quiet close (DONE itself closes the stream, as the last possible timestamp would)."""
        if bound > DONE:
            raise TimestampError(f"stream '{self.name}': timestamp bound {bound} is past the end-of-stream "
                                 f"sentinel (largest allowed: {DONE}, which closes the stream)")
        return self.raise_bound(bound)

    def raise_bound(self, bound: int) -> bool:
        """Promise nothing earlier than `bound` will come. Returns True if the bound moved."""
        if bound <= self.bound:
            return False
        closing = bound >= DONE and self.bound < DONE
        self.bound = bound
        for q in self.consumers:
            if q.bound < bound:
                q.bound = bound
        if closing:
            for observe in self.observers:
                observe(None)
        return True
