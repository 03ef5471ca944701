"""Parallel calls of one node (max_in_flight > 1): timestamp order, bounds, back-pressure, errors, validation."""
import random
import threading
import time
from dataclasses import dataclass

import pytest

from pipelines import (Calculator, CalculatorError, Graph, GraphConfigError, GraphValidationError, Input, Output,
                       Packet, Stop, parse_graph, register_calculator)


class Tracker:
    """What the calls of a test did: how many ran at once, at most, and what the recording sink saw."""

    def __init__(self):
        self.lock = threading.Lock()
        self.now = self.peak = 0
        self.seen: list[int] = []
        self.opened = self.closed = 0

    def enter(self):
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self):
        with self.lock:
            self.now -= 1


TRACK = Tracker()


class JitterCalculator(Calculator):
    """Sleeps a random while (up to `max_sleep`), then sends IN * 10; raises at `fail_at`; sends nothing for
    odd inputs when `evens_only`.

    Ports: IN (int) -> OUT (int)
    """

    IN = Input[int]("IN")
    OUT = Output[int]("OUT")
    max_in_flight = 4

    @dataclass(frozen=True)
    class Options:
        max_sleep: float = 0.003
        fail_at: int = -1
        stop_at: int = -1
        evens_only: bool = False
        seed: int = 0

    def open(self, ctx):
        TRACK.opened += 1
        self.rng = random.Random(self.options.seed)
        self.rng_lock = threading.Lock()

    def process(self, ctx):
        TRACK.enter()
        try:
            with self.rng_lock:
                delay = self.rng.uniform(0, self.options.max_sleep)
            time.sleep(delay)
            value = ctx.get(self.IN)
            if ctx.timestamp == self.options.fail_at:
                raise ValueError(f"bad packet {value}")
            if ctx.timestamp == self.options.stop_at:
                return Stop
            if not (self.options.evens_only and value % 2):
                ctx.send(self.OUT, value * 10)
        finally:
            TRACK.leave()

    def close(self, ctx):
        TRACK.closed += 1


class RecordCalculator(Calculator):
    """Appends every IN to TRACK.seen and passes it on. Ports: IN (int) -> OUT (int)"""

    IN = Input[int]("IN")
    OUT = Output[int]("OUT")

    def process(self, ctx):
        TRACK.seen.append(ctx.timestamp)
        ctx.send(self.OUT, ctx.get(self.IN))


class SerialCalculator(Calculator):
    """Not declared safe to call concurrently. Ports: IN (int) -> OUT (int)"""

    IN = Input[int]("IN")
    OUT = Output[int]("OUT")

    def process(self, ctx):
        ctx.send(self.OUT, ctx.get(self.IN))


for _cls in (JitterCalculator, RecordCalculator, SerialCalculator):
    register_calculator(_cls, replace=True)


@pytest.fixture(autouse=True)
def fresh_tracker():
    global TRACK
    TRACK = Tracker()
    yield


def graph(text: str) -> Graph:
    return Graph.from_string(text, "t.yaml")


def chain(n: int, extra: str = "", options: str = "{}") -> Graph:
    return graph(f"""
        inputs: [a]
        outputs: [b]
        nodes:
          - {{calculator: JitterCalculator, name: jitter, inputs: {{IN: a}}, outputs: {{OUT: b}},
              max_in_flight: {n}, options: {options}{extra}}}
    """)


@pytest.mark.parametrize("n", [1, 2, 4])
def test_outputs_stay_in_timestamp_order_with_random_call_times(n):
    g = chain(n, options="{seed: %d}" % n)
    out = g.run(inputs={"a": [Packet(t, t) for t in range(60)]}, outputs=["b"], timeout=10)
    assert [(p.timestamp, p.payload) for p in out["b"]] == [(t, 10 * t) for t in range(60)]
    assert TRACK.peak <= n
    if n > 1:
        assert TRACK.peak > 1  # the calls did overlap
    assert TRACK.opened == TRACK.closed == 1  # one instance, opened and closed once


def test_never_more_in_flight_than_allowed_and_downstream_queues_stay_bounded():
    g = graph("""
        outputs: [c]
        nodes:
          - {calculator: CountingSource, name: src, outputs: {OUT: n}, options: {count: 80}}
          - {calculator: JitterCalculator, name: jitter, inputs: {IN: n}, outputs: {OUT: b}, max_in_flight: 3,
             queue: 4}
          - {calculator: SlowPassThrough, name: slow, inputs: {IN: b}, outputs: {OUT: c}, queue: 3,
             options: {delay: 0.001}}
    """)
    out = g.run(outputs=["c"], timeout=10)
    assert [p.payload for p in out["c"]] == [10 * t for t in range(80)]
    assert 1 < TRACK.peak <= 3
    assert g.last_stats.row("slow").max_queue <= 3 + 1
    assert g.last_stats.row("jitter").max_queue <= 4 + 1


def test_bounds_let_a_downstream_join_proceed_while_calls_are_in_flight():
    # The parallel node sends nothing for odd timestamps; the join only settles those through its bounds.
    g = graph("""
        outputs: [sum]
        nodes:
          - {calculator: CountingSource, name: src, outputs: {OUT: n}, options: {count: 100}}
          - {calculator: JitterCalculator, name: jitter, inputs: {IN: n}, outputs: {OUT: evens}, max_in_flight: 4,
             options: {evens_only: true}}
          - {calculator: AddCalculator, name: join, inputs: {A: n, B: evens}, outputs: {OUT: sum}}
    """)
    out = g.run(outputs=["sum"], timeout=10)
    assert [p.payload for p in out["sum"]] == [11 * t if t % 2 == 0 else t for t in range(100)]


def test_an_error_in_a_middle_call_fails_the_graph_at_its_timestamp_and_nothing_later_is_emitted():
    g = graph("""
        outputs: [c]
        nodes:
          - {calculator: CountingSource, name: src, outputs: {OUT: n}, options: {count: 60}}
          - {calculator: JitterCalculator, name: jitter, inputs: {IN: n}, outputs: {OUT: b}, max_in_flight: 4,
             options: {fail_at: 25}}
          - {calculator: RecordCalculator, name: record, inputs: {IN: b}, outputs: {OUT: c}}
    """)
    with pytest.raises(CalculatorError, match="at timestamp 25") as info:
        g.run(outputs=["c"], timeout=10)
    assert info.value.node == "jitter" and info.value.timestamp == 25
    assert TRACK.seen == list(range(len(TRACK.seen))) and len(TRACK.seen) <= 25
    assert TRACK.opened == TRACK.closed == 1 and TRACK.now == 0  # closed once, after every call ended


def test_on_error_skip_skips_only_the_failed_packet():
    g = chain(4, extra=", on_error: skip", options="{fail_at: 7}")
    out = g.run(inputs={"a": [Packet(t, t) for t in range(30)]}, outputs=["b"], timeout=10)
    assert [p.timestamp for p in out["b"]] == [t for t in range(30) if t != 7]
    assert g.last_stats.row("jitter").errors == 1


def test_cancel_with_calls_in_flight_drains_and_closes_once():
    g = chain(4, options="{max_sleep: 0.02}")
    handle = g.start(outputs=["b"])
    for t in range(6):
        handle.send("a", t, t)
    time.sleep(0.01)
    handle.cancel()
    handle.wait(timeout=5)
    assert TRACK.now == 0 and TRACK.opened == TRACK.closed == 1


def test_stop_drains_the_calls_in_flight():
    g = chain(4, options="{max_sleep: 0.01}")
    handle = g.start(outputs=["b"])
    for t in range(12):
        handle.send("a", t, t)
    handle.stop()
    got = [p.timestamp for p in handle.outputs("b", timeout=5)]
    handle.wait(timeout=5)
    assert got == list(range(12)) and TRACK.closed == 1


def test_a_stop_from_one_call_drops_what_later_calls_sent():
    g = chain(4, options="{stop_at: 10}")
    out = g.run(inputs={"a": [Packet(t, t) for t in range(40)]}, outputs=["b"], timeout=10)
    assert [p.timestamp for p in out["b"]] == list(range(10))
    assert TRACK.closed == 1


NODE = """
inputs: [a]
outputs: [b]
executors: {pool: {threads: 2}}
nodes:
  - {calculator: %s, name: n, inputs: {IN: a}, outputs: {OUT: b}, max_in_flight: %s%s}
"""


@pytest.mark.parametrize("calc, n, extra, message", [
    ("SerialCalculator", 2, "", 'max_in_flight: 2 but SerialCalculator is not declared safe to call'),
    ("JitterCalculator", 8, "", "max_in_flight: 8 but JitterCalculator allows at most 4"),
    ("JitterCalculator", 3, ", executor: pool", "executor 'pool' has 2 threads; give it at least 3"),
    ("JitterCalculator", 0, "", "max_in_flight must be a whole number >= 1, got 0"),
    ("JitterCalculator", "two", "", "max_in_flight must be a whole number >= 1, got 'two'"),
])
def test_validation_refuses_what_cannot_run_in_parallel(calc, n, extra, message):
    with pytest.raises(GraphValidationError, match=message) as info:
        Graph(parse_graph(NODE % (calc, n, extra), "g.yaml"))
    assert 'node "n"' in str(info.value)


def test_source_nodes_cannot_run_in_parallel():
    with pytest.raises(GraphValidationError, match="max_in_flight: 2 on a source node"):
        graph("outputs: [n]\nnodes: [{calculator: CountingSource, outputs: {OUT: n}, max_in_flight: 2}]")


def test_max_in_flight_is_settable_from_the_command_line():
    g = Graph(parse_graph(NODE % ("JitterCalculator", 1, ""), "g.yaml", overrides=["n.max_in_flight=4"]))
    assert g.plan.nodes[0].config.max_in_flight == 4
    with pytest.raises(GraphConfigError, match="max_in_flight must be a whole number"):
        parse_graph(NODE % ("JitterCalculator", 1, ""), "g.yaml", overrides=["n.max_in_flight=-1"])
