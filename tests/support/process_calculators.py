"""Calculators the process-executor tests run in worker processes.

They live in a module of their own, not in the test file, because a worker imports a node's class by module and
name: this module is importable from a worker (the tests' sys.path goes along with 'spawn'), and cheap to import.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines import Calculator, Input, Output, calculator, register_calculator
from pipelines.types import Frame


class BusyCalculator(Calculator):
    """Spins a pure-Python loop (`work` iterations, holding the GIL) and sleeps `sleep` s times 1, 2 or 0 for an
    int IN of 0, 1, 2... (so a later call often ends first), then sends IN on with the worker's pid and when the
    call ran.
    Stateless, so up to 8 calls may run at once.

    Ports: IN (Any) -> OUT ((payload, pid, start, end), wall-clock seconds)
    """

    IN = Input[Any]("IN")
    OUT = Output[Any]("OUT")
    max_in_flight = 8

    @dataclass(frozen=True)
    class Options:
        work: int = 1000
        sleep: float = 0.0

    def process(self, ctx):
        start = time.time()
        total = 0
        for i in range(self.options.work):
            total += i * i
        if self.options.sleep:
            value = ctx.get(self.IN)
            time.sleep(self.options.sleep * ((value + 1) % 3 if isinstance(value, int) else 1))
        ctx.send(self.OUT, (ctx.get(self.IN), os.getpid(), start, time.time()))


class CountInWorker(Calculator):
    """Stateful: sends (how many packets this instance has seen, pid, what open() was told); logs at open.

    Ports: IN (Any) -> OUT (tuple)
    """

    IN = Input[Any]("IN")
    OUT = Output[Any]("OUT")

    @dataclass(frozen=True)
    class Options:
        label: str = "counter"

    def open(self, ctx):
        self.seen = 0
        self.side = dict(ctx.side_inputs)
        ctx.logger.info("opened %s in process %d", self.options.label, os.getpid())

    def process(self, ctx):
        self.seen += 1
        ctx.send(self.OUT, (self.seen, os.getpid(), self.options.label, self.side.get("greeting")))

    def close(self, ctx):
        ctx.report_problem(f"closed after {self.seen} packets")


class EchoCalculator(Calculator):
    """Sends IN back unchanged, with a checksum of every array in it computed in the worker.

    Ports: IN (Any) -> OUT ((payload, checksums)), FRAME (Frame): IN when it is a Frame, its image inverted
    """

    IN = Input[Any]("IN")
    OUT = Output[Any]("OUT")
    FRAME = Output[Frame]("FRAME")

    def process(self, ctx):
        value = ctx.get(self.IN)
        ctx.send(self.OUT, (value, checksums(value)))
        if isinstance(value, Frame):
            ctx.send(self.FRAME, Frame(255 - value.image, value.index, value.source))


def checksums(value: Any) -> list[int]:
    """A crc of every array reachable from `value` (tuples, lists, dicts, dataclass fields)."""
    import zlib

    if isinstance(value, np.ndarray):
        return [zlib.crc32(np.ascontiguousarray(value).tobytes())]
    if isinstance(value, (list, tuple)):
        return [c for v in value for c in checksums(v)]
    if isinstance(value, dict):
        return [c for v in value.values() for c in checksums(v)]
    if hasattr(value, "__dataclass_fields__"):
        return [c for name in value.__dataclass_fields__ for c in checksums(getattr(value, name))]
    return []


class FailAtCalculator(Calculator):
    """Passes IN on; raises ZeroDivisionError at timestamp `at`, deep in a helper, so the traceback says where.

    Ports: IN (Any) -> OUT (Any)
    """

    IN = Input[Any]("IN")
    OUT = Output[Any]("OUT")
    max_in_flight = 4

    @dataclass(frozen=True)
    class Options:
        at: int = 3
        delay: float = 0.0

    def process(self, ctx):
        if self.options.delay:
            time.sleep(self.options.delay)
        if ctx.timestamp == self.options.at:
            divide_by_zero_in_worker()
        ctx.send(self.OUT, ctx.get(self.IN))


def divide_by_zero_in_worker() -> float:
    return 1 / 0


class DieAtCalculator(Calculator):
    """Passes IN on after `delay` s; kills its own worker process with SIGKILL at timestamp `at`.

    Ports: IN (Any) -> OUT (Any)
    """

    IN = Input[Any]("IN")
    OUT = Output[Any]("OUT")
    max_in_flight = 4

    @dataclass(frozen=True)
    class Options:
        at: int = 5
        delay: float = 0.005

    def process(self, ctx):
        time.sleep(self.options.delay)
        if ctx.timestamp == self.options.at:
            os.kill(os.getpid(), signal.SIGKILL)
        ctx.send(self.OUT, ctx.get(self.IN))


@calculator(replace=True)
def triple_in_worker(IN: int, *, factor: int = 3) -> tuple:
    """A function calculator: its class is found in the worker by its registered name, once this module is in."""
    return IN * factor, os.getpid()


for _cls in (BusyCalculator, CountInWorker, EchoCalculator, FailAtCalculator, DieAtCalculator):
    register_calculator(_cls, replace=True)
