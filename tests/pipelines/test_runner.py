"""Scheduling semantics: sync joins, timestamp bounds, queues and drops, back edges, executors, the handle."""
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from pipelines import (Calculator, GraphDeadlockError, Input, Output, Packet, Stop, TimestampError, calculator)
from pipelines import CalculatorError, Graph
from pipelines.testing import CalculatorRunner


def graph(text: str) -> Graph:
    return Graph.from_string(text, "t.yaml")


def payloads(packets):
    return [p.payload for p in packets]


def test_run_returns_packets_with_timestamps():
    g = graph("inputs: [a]\noutputs: [b]\nnodes: [{calculator: PassThroughCalculator, inputs: {IN: a}, outputs: {OUT: b}}]")
    out = g.run(inputs={"a": [Packet(10, "x"), Packet(20, "y")]}, outputs=["b"])
    assert out["b"] == [Packet(10, "x"), Packet(20, "y")]


def test_sync_join_delivers_inputs_of_one_timestamp_together():
    g = graph("""
        inputs: [a, b]
        outputs: [sum, missing]
        nodes:
          - {calculator: AddCalculator, inputs: {A: a, B: b}, outputs: {OUT: sum, MISSING: missing}}
    """)
    out = g.run(inputs={"a": [Packet(t, t) for t in range(50)], "b": [Packet(t, 100 * t) for t in range(0, 50, 2)]},
                outputs=["sum", "missing"])
    assert [p.timestamp for p in out["sum"]] == list(range(50))
    assert payloads(out["sum"]) == [t + (100 * t if t % 2 == 0 else 0) for t in range(50)]
    assert [p.timestamp for p in out["missing"]] == list(range(1, 50, 2))


def test_bound_propagation_lets_a_join_proceed_past_dropped_timestamps():
    # The thinner emits nothing for odd timestamps; without bound propagation the join would wait for
    # them forever (and the bounded queue on the other branch would stall the source).
    g = graph("""
        outputs: [sum]
        nodes:
          - {calculator: CountingSource, name: src, outputs: {OUT: n}, options: {count: 200}}
          - {calculator: PacketThinnerCalculator, name: thin, inputs: {IN: n}, outputs: {OUT: thinned}, options: {every: 2}}
          - {calculator: PassThroughCalculator, name: a, inputs: {IN: thinned}, outputs: {OUT: thinned2}}
          - {calculator: AddCalculator, name: join, inputs: {A: n, B: thinned2}, outputs: {OUT: sum}}
    """)
    out = g.run(outputs=["sum"], timeout=20)
    assert payloads(out["sum"]) == [2 * t if t % 2 == 0 else t for t in range(200)]


def test_lossless_queues_throttle_the_source():
    g = graph("""
        outputs: [out]
        nodes:
          - {calculator: CountingSource, name: src, outputs: {OUT: n}, options: {count: 60}}
          - {calculator: SlowPassThrough, name: slow, inputs: {IN: n}, outputs: {OUT: out}, queue: {size: 3}, options: {delay: 0.002}}
    """)
    out = g.run(outputs=["out"])
    assert payloads(out["out"]) == list(range(60))
    row = g.last_stats.row("slow")
    assert row.max_queue <= 3 + 1 and row.drops == 0


@pytest.mark.parametrize("overflow, expect_first", [("drop_oldest", False), ("drop_newest", True)])
def test_drop_policies(overflow, expect_first):
    g = graph(f"""
        outputs: [out]
        nodes:
          - {{calculator: CountingSource, name: src, outputs: {{OUT: n}}, options: {{count: 100}}}}
          - {{calculator: SlowPassThrough, name: slow, inputs: {{IN: n}}, outputs: {{OUT: out}},
              queue: {{size: 2, overflow: {overflow}}}, options: {{delay: 0.01}}}}
    """)
    out = payloads(g.run(outputs=["out"], timeout=20)["out"])
    assert len(out) < 100 and g.last_stats.row("slow").drops == 100 - len(out)
    assert out == sorted(out)
    assert (0 in out) == expect_first or overflow == "drop_oldest"
    if overflow == "drop_oldest":
        assert 99 in out  # the newest always survives
    else:
        assert 99 not in out


def test_flow_limiter_back_edge_keeps_one_in_flight():
    in_flight, peak = [0], [0]
    lock = threading.Lock()

    @calculator(name="TrackInFlight", register=False)
    def track(IN: int) -> int:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.002)
        with lock:
            in_flight[0] -= 1
        return IN

    from pipelines import register_calculator
    register_calculator(track, replace=True)
    g = graph("""
        outputs: [done, allowed]
        nodes:
          - {calculator: CountingSource, name: src, outputs: {OUT: n}, options: {count: 200}}
          - calculator: FlowLimiterCalculator
            name: limiter
            inputs: {IMAGE: n, FINISHED: {stream: done, back_edge: true}}
            outputs: {IMAGE: throttled, ALLOW: allowed}
          - {calculator: TrackInFlight, name: work, inputs: {IN: throttled}, outputs: {OUT: done}}
    """)
    out = g.run(outputs=["done", "allowed"], timeout=20)
    done = payloads(out["done"])
    assert peak[0] == 1
    assert 0 < len(done) < 200 and done == sorted(done)
    assert sum(payloads(out["allowed"])) == len(done) and len(out["allowed"]) == 200


def test_timestamps_must_increase_and_the_error_names_the_stream():
    g = graph("inputs: [a]\noutputs: [b]\nnodes: [{calculator: PassThroughCalculator, inputs: {IN: a}, outputs: {OUT: b}}]")
    with pytest.raises(Exception) as info:
        g.run(inputs={"a": [Packet(5, 1), Packet(5, 2)]}, outputs=["b"], timeout=10)
    assert "stream 'a'" in str(info.value) and "timestamp 5" in str(info.value)


def test_error_mid_stream_stops_promptly_closes_everything_and_names_the_node(tmp_path):
    events = tmp_path / "events.txt"
    g = graph(f"""
        nodes:
          - {{calculator: CountingSource, name: src, outputs: {{OUT: n}}, options: {{count: 0}}}}
          - {{calculator: RaiseAtCalculator, name: fragile, inputs: {{IN: n}}, outputs: {{OUT: m}}, options: {{at: 50}}}}
          - {{calculator: FileEventSink, name: sink, inputs: {{IN: m}}, options: {{path: "{events}"}}}}
          - {{calculator: FileEventSink, name: side, inputs: {{IN: n}}, options: {{path: "{events}.side"}}}}
    """)
    start = time.monotonic()
    with pytest.raises(CalculatorError) as info:
        g.run(timeout=20)
    assert time.monotonic() - start < 5
    err = info.value
    assert (err.node, err.calculator, err.timestamp) == ("fragile", "RaiseAtCalculator", 50)
    assert isinstance(err.__cause__, ValueError) and "boom at 50" in str(err)
    lines = events.read_text().splitlines()
    assert lines[0] == "open" and lines[-1] == "close"
    assert (tmp_path / "events.txt.side").read_text().splitlines()[-1] == "close"


def test_on_error_skip_drops_the_packet_and_goes_on():
    g = graph("""
        outputs: [m]
        nodes:
          - {calculator: CountingSource, name: src, outputs: {OUT: n}, options: {count: 10}}
          - {calculator: RaiseAtCalculator, name: fragile, inputs: {IN: n}, outputs: {OUT: m}, options: {at: 4}, on_error: skip}
    """)
    out = g.run(outputs=["m"], timeout=10)
    assert payloads(out["m"]) == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert g.last_stats.row("fragile").errors == 1


def test_open_failure_closes_the_nodes_already_open(tmp_path):
    events = tmp_path / "events.txt"
    g = graph(f"""
        nodes:
          - {{calculator: CountingSource, name: src, outputs: {{OUT: n}}}}
          - {{calculator: FileEventSink, name: sink, inputs: {{IN: n}}, options: {{path: "{events}"}}}}
          - {{calculator: FileEventSink, name: broken, inputs: {{IN: n}}, options: {{path: "{tmp_path}/no/such/dir/x"}}}}
    """)
    with pytest.raises(CalculatorError, match='node "broken" .* failed in open'):
        g.run(timeout=10)
    assert events.read_text().splitlines() == ["open", "close"]


class Overlap(Calculator):
    """Counts calls that overlap in time: there must never be any."""

    IN = Input[Any]("IN")
    OUT = Output[Any]("OUT")
    active = 0
    overlaps = 0

    def process(self, ctx):
        type(self).active += 1
        if type(self).active > 1:
            type(self).overlaps += 1
        time.sleep(0.0005)
        type(self).active -= 1
        ctx.send(self.OUT, ctx.get(self.IN))


def test_a_calculator_is_never_called_from_two_threads_at_once_on_a_shared_pool():
    from pipelines import register_calculator
    register_calculator(Overlap, replace=True)
    g = graph("""
        executors: {pool: {threads: 4}}
        outputs: [c]
        nodes:
          - {calculator: CountingSource, name: src, outputs: {OUT: n}, options: {count: 300}}
          - {calculator: Overlap, name: o1, inputs: {IN: n}, outputs: {OUT: a}, executor: pool}
          - {calculator: PassThroughCalculator, name: p, inputs: {IN: a}, outputs: {OUT: b}, executor: pool}
          - {calculator: PassThroughCalculator, name: q, inputs: {IN: b}, outputs: {OUT: c}, executor: pool}
    """)
    out = g.run(outputs=["c"], timeout=20)
    assert payloads(out["c"]) == list(range(300))
    assert Overlap.overlaps == 0


def test_one_thread_executor_shared_by_producer_and_consumer_does_not_deadlock():
    g = graph("""
        executors: {one: {threads: 1}}
        outputs: [c]
        nodes:
          - {calculator: CountingSource, name: src, outputs: {OUT: n}, options: {count: 500}, executor: one}
          - {calculator: PassThroughCalculator, name: p, inputs: {IN: n}, outputs: {OUT: b}, executor: one, queue: {size: 1}}
          - {calculator: PassThroughCalculator, name: q, inputs: {IN: b}, outputs: {OUT: c}, executor: one, queue: {size: 1}}
    """)
    assert payloads(g.run(outputs=["c"], timeout=20)["c"]) == list(range(500))


def test_handle_sends_iterates_and_waits():
    g = graph("inputs: [a]\noutputs: [b]\nnodes: [{calculator: PassThroughCalculator, inputs: {IN: a}, outputs: {OUT: b}}]")
    handle = g.start(outputs=["b"])
    for i in range(5):
        handle.send("a", i * 10, timestamp=i)
    handle.close_inputs()
    got = list(handle.outputs("b"))
    assert handle.wait(5)
    assert got == [Packet(i, i * 10) for i in range(5)]


def test_graceful_stop_ends_an_endless_source_and_closes_sinks(tmp_path):
    events = tmp_path / "events.txt"
    g = graph(f"""
        nodes:
          - {{calculator: CountingSource, name: src, outputs: {{OUT: n}}, options: {{count: 0, delay: 0.001}}}}
          - {{calculator: FileEventSink, name: sink, inputs: {{IN: n}}, options: {{path: "{events}"}}}}
    """)
    handle = g.start()
    time.sleep(0.2)
    handle.stop()
    assert handle.wait(5)
    lines = events.read_text().splitlines()
    assert lines[-1] == "close" and len(lines) > 10


def test_source_ends_with_stop_and_end_of_stream_propagates():
    out = CalculatorRunner("calculator: CountingSource\noptions: {count: 3}").run()
    assert out["OUT"] == [Packet(0, 0), Packet(1, 1), Packet(2, 2)]


def test_deadlock_is_reported_instead_of_hanging():
    # The join waits for `b` at each timestamp, but `b` only gets packets every 1000 timestamps and
    # nothing propagates bounds for it (its producer manages bounds itself and sets none).
    class Lazy(Calculator):
        IN = Input[int]("IN")
        OUT = Output[int]("OUT")
        propagate_bounds = False

        def process(self, ctx):
            if ctx.timestamp % 1000 == 999:
                ctx.send(self.OUT, 0)

    from pipelines import register_calculator
    register_calculator(Lazy, replace=True)
    g = graph("""
        nodes:
          - {calculator: CountingSource, name: src, outputs: {OUT: n}, options: {count: 100000}}
          - {calculator: Lazy, name: lazy, inputs: {IN: n}, outputs: {OUT: b}}
          - {calculator: AddCalculator, name: join, inputs: {A: n, B: b}, queue: {size: 4}}
    """)
    with pytest.raises(GraphDeadlockError, match="graph deadlocked"):
        g.run(timeout=20)


def test_calculator_decorator_builds_a_typed_stateless_calculator():
    @calculator(register=False)
    def scale(IN: float, *, factor: float = 2.0) -> float:
        return IN * factor

    assert scale.__name__ == "ScaleCalculator"
    assert scale.input_ports()["IN"].payload_type is float
    assert scale.Options(factor=3.0).factor == 3.0
    from pipelines import register_calculator
    register_calculator(scale, replace=True)
    out = CalculatorRunner("calculator: ScaleCalculator\noptions: {factor: 0.5}").run({"IN": [2.0, 4.0]})
    assert payloads(out["OUT"]) == [1.0, 2.0]


def test_registry_refuses_duplicates_unless_replace():
    from pipelines import RegistryError, register_calculator

    class PassThroughCalculator(Calculator):
        IN = Input[Any]("IN")

        def process(self, ctx):
            pass

    with pytest.raises(RegistryError, match="already registered"):
        register_calculator(PassThroughCalculator)


def test_plugins_are_found_through_entry_points():
    from pipelines import calculators

    view = calculators()
    assert "CountingSource" in view and view["CountingSource"].__module__ == "framegraph_testplugins"
    with pytest.raises(TypeError):
        view["X"] = object  # read-only


def test_multiple_input_port_delivers_a_list():
    @dataclass(frozen=True)
    class _O:
        pass

    class Gather(Calculator):
        IN = Input[int]("IN").multiple()
        OUT = Output[list]("OUT")

        def process(self, ctx):
            ctx.send(self.OUT, ctx.get(self.IN))

    from pipelines import register_calculator
    register_calculator(Gather, replace=True)
    g = graph("""
        inputs: [a, b]
        outputs: [out]
        nodes: [{calculator: Gather, inputs: {IN: [a, b]}, outputs: {OUT: out}}]
    """)
    out = g.run(inputs={"a": [Packet(0, 1), Packet(1, 2)], "b": [Packet(1, 20)]}, outputs=["out"])
    assert payloads(out["out"]) == [[1, None], [2, 20]]


def test_stop_returned_by_a_sink_ends_the_graph():
    class TakeThree(Calculator):
        IN = Input[int]("IN")

        def open(self, ctx):
            self.n = 0

        def process(self, ctx):
            self.n += 1
            if self.n == 3:
                ctx.stop_graph()

    from pipelines import register_calculator
    register_calculator(TakeThree, replace=True)
    g = graph("""
        nodes:
          - {calculator: CountingSource, name: src, outputs: {OUT: n}, options: {count: 0, delay: 0.001}}
          - {calculator: TakeThree, inputs: {IN: n}}
    """)
    g.run(timeout=10)
    assert g.last_stats.row("src").packets_out < 1000


def test_timestamp_error_class():
    assert issubclass(TimestampError, ValueError) and Stop


def test_flow_limiter_never_drops_packets_that_are_not_live():
    class Item:
        live = False

    items = [Item() for _ in range(50)]
    out = CalculatorRunner("""
        calculator: FlowLimiterCalculator
        options: {max_in_flight: 1}
    """).run({"IMAGE": items})
    assert len(out["IMAGE"]) == 50 and all(p.payload for p in out["ALLOW"])
