"""Packets, timestamps and the end-of-stream marker."""
from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

#: Timestamps are integer microseconds, from 0 to MAX_TIMESTAMP: a negative one, or one at or past DONE, is a
#: TimestampError naming the stream. DONE is the end-of-stream sentinel: a stream whose bound reaches it is
#: closed, so a timestamp bound may be DONE (that closes the stream) but not more.
DONE = 2**62
#: Largest timestamp a packet may carry.
MAX_TIMESTAMP = DONE - 1


class Packet(NamedTuple):
    """A payload at an integer microsecond timestamp. Immutable and cheap (a tuple)."""

    timestamp: int
    payload: Any


#: ``new_packet((timestamp, payload))`` is ``Packet(timestamp, payload)`` without the named tuple's
#: Python-level ``__new__``: half the cost, for the scheduler, which makes one per packet per hop.
new_packet = partial(tuple.__new__, Packet)


class Stop(Exception):
    """Returned (the class or an instance) or raised by `process` to end a node's output streams.

    Sources use it to say "no more packets". Any other node returning it stops consuming and
    closes its outputs, which is how a sink can end a graph early.
    """


def is_stop(value: object) -> bool:
    return value is Stop or isinstance(value, Stop)


def seconds_to_timestamp(seconds: float) -> int:
    return int(round(seconds * 1_000_000))
