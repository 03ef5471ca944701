"""Calculators the tests load as a real plugin, through the `framegraph.calculators` entry point group.

They are small on purpose: counting sources, a node that raises at a chosen timestamp, a slow pass-through,
and a sink that appends every event (open, packet, close) to a file so a separate process can be checked.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pipelines import Calculator, Input, Output, Stop


class CountingSource(Calculator):
    """Emits 0, 1, 2, ... `count - 1` at timestamps 0, step, 2*step...; count 0 means forever."""

    @dataclass(frozen=True)
    class Options:
        count: int = 10
        step: int = 1
        delay: float = 0.0  # seconds between packets, to make a slow live-like source

    OUT = Output[int]("OUT")

    def open(self, ctx):
        self.i = 0

    def process(self, ctx):
        if (self.options.count and self.i >= self.options.count) or ctx.stopping:
            return Stop
        if self.options.delay:
            time.sleep(self.options.delay)
        ctx.send(self.OUT, self.i, timestamp=self.i * self.options.step)
        self.i += 1


class RaiseAtCalculator(Calculator):
    """Passes ints through and raises ValueError at timestamp `at`."""

    @dataclass(frozen=True)
    class Options:
        at: int = 5

    IN = Input[int]("IN")
    OUT = Output[int]("OUT")

    def process(self, ctx):
        if ctx.timestamp == self.options.at:
            raise ValueError(f"boom at {ctx.timestamp}")
        ctx.send(self.OUT, ctx.get(self.IN))


class SlowPassThrough(Calculator):
    @dataclass(frozen=True)
    class Options:
        delay: float = 0.01
        open_delay: float = 0.0  # a slow open (an engine loading its model)

    IN = Input[Any]("IN")
    OUT = Output[Any]("OUT")

    def open(self, ctx):
        time.sleep(self.options.open_delay)

    def process(self, ctx):
        time.sleep(self.options.delay)
        ctx.send(self.OUT, ctx.get(self.IN))


class FileEventSink(Calculator):
    """Appends 'open', 'packet TS PAYLOAD' and 'close' lines to `path`, flushed at once."""

    @dataclass(frozen=True)
    class Options:
        path: str

    IN = Input[Any]("IN")

    def open(self, ctx):
        self.f = open(self.options.path, "a", buffering=1)
        self.f.write("open\n")

    def process(self, ctx):
        self.f.write(f"packet {ctx.timestamp} {ctx.get(self.IN)}\n")

    def close(self, ctx):
        self.f.write("close\n")
        self.f.close()


class AddCalculator(Calculator):
    """A join: A + B at each timestamp; a missing side counts as 0 and is reported in MISSING."""

    A = Input[int]("A")
    B = Input[int]("B")
    OUT = Output[int]("OUT")
    MISSING = Output[str]("MISSING")

    def process(self, ctx):
        a, b = ctx.get(self.A), ctx.get(self.B)
        if a is None or b is None:
            ctx.send(self.MISSING, "A" if a is None else "B")
        ctx.send(self.OUT, (a or 0) + (b or 0))
