"""The scheduler's hot path: timestamps at the end-of-stream sentinel, and batches of input sets per node
(several packets per scheduling round) keeping back-pressure, order, Stop, errors and latency as they were."""
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from pipelines import Calculator, CalculatorError, Graph, Input, Output, Packet, Stop, TimestampError
from pipelines import register_calculator
from pipelines.packet import DONE, MAX_TIMESTAMP


def graph(text: str) -> Graph:
    return Graph.from_string(text, "t.yaml")


def payloads(packets):
    return [p.payload for p in packets]


@register_calculator(replace=True)
class SendAtCalculator(Calculator):
    """Sends its input on OUT at the timestamp in the options (or the bound, with `bound: true`)."""

    @dataclass(frozen=True)
    class Options:
        at: int = 0
        bound: bool = False

    IN = Input[Any]("IN")
    OUT = Output[Any]("OUT")

    def process(self, ctx):
        if self.options.bound:
            ctx.set_next_timestamp_bound(self.OUT, self.options.at)
        else:
            ctx.send(self.OUT, ctx.get(self.IN), timestamp=self.options.at)


@register_calculator(replace=True)
class TwiceCalculator(Calculator):
    """Sends each input twice, at 2t and 2t+1: more than one packet per call."""

    IN = Input[Any]("IN")
    OUT = Output[Any]("OUT")

    def process(self, ctx):
        ctx.send(self.OUT, ctx.get(self.IN), timestamp=2 * ctx.timestamp)
        ctx.send(self.OUT, ctx.get(self.IN), timestamp=2 * ctx.timestamp + 1)


def one_node(calc: str, options: str = "{}") -> Graph:
    return graph(f"""
        inputs: [frames]
        outputs: [detections]
        nodes:
          - {{calculator: {calc}, name: send, inputs: {{IN: frames}}, outputs: {{OUT: detections}}, options: {options}}}
    """)


# ---------------------------------------------------------------- timestamps and the end-of-stream sentinel

def test_a_packet_sent_at_the_sentinel_fails_the_graph_naming_the_stream():
    with pytest.raises(CalculatorError) as info:
        one_node("SendAtCalculator", f"{{at: {DONE}}}").run(inputs={"frames": [Packet(3, "x")]},
                                                             outputs=["detections"], timeout=10)
    message = str(info.value)
    assert info.value.node == "send" and info.value.timestamp == 3
    assert f"stream 'detections': timestamp {DONE} is at or past the end-of-stream sentinel" in message
    assert f"largest allowed: {MAX_TIMESTAMP}" in message
    assert isinstance(info.value.original, TimestampError)


def test_the_largest_timestamp_still_works_and_closes_nothing_early():
    out = one_node("SendAtCalculator", f"{{at: {MAX_TIMESTAMP}}}").run(
        inputs={"frames": [Packet(3, "x")]}, outputs=["detections"], timeout=10)
    assert out["detections"] == [Packet(MAX_TIMESTAMP, "x")]


def test_a_graph_input_at_the_sentinel_raises_and_the_largest_timestamp_works():
    g = one_node("PassThroughCalculator")
    handle = g.start(outputs=["detections"])
    with pytest.raises(TimestampError, match=f"stream 'frames': timestamp {DONE} is at or past the end-of-stream"):
        handle.send("frames", "late", timestamp=DONE)
    handle.send("frames", "last", timestamp=MAX_TIMESTAMP)  # the refused packet did not close the stream
    handle.close_inputs()
    assert list(handle.outputs("detections")) == [Packet(MAX_TIMESTAMP, "last")]
    assert handle.wait(5)

    with pytest.raises(TimestampError, match="stream 'frames'.*end-of-stream sentinel"):
        g.run(inputs={"frames": [Packet(DONE + 5, "x")]}, outputs=["detections"], timeout=10)


def test_negative_timestamps_are_refused_and_said_to_be_negative():
    handle = one_node("PassThroughCalculator").start()
    with pytest.raises(TimestampError, match="stream 'frames': timestamp -1 is negative"):
        handle.send("frames", "x", timestamp=-1)
    handle.close_inputs()
    assert handle.wait(5)
    with pytest.raises(CalculatorError, match="stream 'detections': timestamp -2 is negative"):
        one_node("SendAtCalculator", "{at: -2}").run(inputs={"frames": ["x"]}, timeout=10)


def test_a_bound_past_the_sentinel_is_an_error_and_the_sentinel_itself_closes_the_stream():
    with pytest.raises(CalculatorError, match=f"stream 'detections': timestamp bound {DONE + 1} is past"):
        one_node("SendAtCalculator", f"{{at: {DONE + 1}, bound: true}}").run(inputs={"frames": ["x"]}, timeout=10)
    out = one_node("SendAtCalculator", f"{{at: {DONE}, bound: true}}").run(
        inputs={"frames": ["x", "y"]}, outputs=["detections"], timeout=10)
    assert out["detections"] == []


# ---------------------------------------------------------------- batches of input sets

def chain(hops: int, size: int, sink: str = "PassThroughCalculator", sink_options: str = "{}") -> str:
    nodes = [f"  - {{calculator: PassThroughCalculator, name: p{i}, inputs: {{IN: s{i}}}, outputs: {{OUT: s{i + 1}}},"
             f" queue: {{size: {size}}}}}" for i in range(hops)]
    nodes.append(f"  - {{calculator: {sink}, name: sink, inputs: {{IN: s{hops}}}, outputs: {{OUT: out}},"
                 f" queue: {{size: {size}}}, options: {sink_options}}}")
    return "inputs: [s0]\noutputs: [out]\nnodes:\n" + "\n".join(nodes) + "\n"


@pytest.mark.parametrize("size", [1, 3, 64])
def test_a_fast_chain_keeps_order_and_every_queue_within_its_size(size):
    g = graph(chain(4, size))
    out = g.run(inputs={"s0": range(2000)}, outputs=["out"], timeout=30)
    assert out["out"] == [Packet(t, t) for t in range(2000)]
    for row in g.last_stats.rows:
        assert row.packets_in == row.packets_out == 2000 and row.drops == 0
        assert row.max_queue <= size + 1, row  # as with one packet at a time: the queue plus the one taken


def test_a_slow_consumer_throttles_a_batching_producer():
    g = graph(chain(3, 4, "SlowPassThrough", "{delay: 0.002}"))
    out = g.run(inputs={"s0": range(100)}, outputs=["out"], timeout=30)
    assert payloads(out["out"]) == list(range(100))
    assert all(row.max_queue <= 4 + 1 for row in g.last_stats.rows)


def test_a_node_sending_two_packets_per_call_stays_within_one_call_of_its_consumer_queue():
    g = graph("""
        inputs: [a]
        outputs: [out]
        nodes:
          - {calculator: TwiceCalculator, name: twice, inputs: {IN: a}, outputs: {OUT: b}, queue: {size: 16}}
          - {calculator: SlowPassThrough, name: slow, inputs: {IN: b}, outputs: {OUT: out}, queue: {size: 4},
             options: {delay: 0.001}}
    """)
    out = g.run(inputs={"a": range(100)}, outputs=["out"], timeout=30)
    assert [p.timestamp for p in out["out"]] == list(range(200))
    assert g.last_stats.row("slow").max_queue <= 4 - 1 + 2


def test_stop_in_the_middle_of_a_batch_ends_the_node_there():
    calls = []

    class StopAtFive(Calculator):
        IN = Input[int]("IN")
        OUT = Output[int]("OUT")

        def process(self, ctx):
            calls.append(ctx.timestamp)
            if ctx.timestamp == 5:
                return Stop
            ctx.send(self.OUT, ctx.get(self.IN))

        def close(self, ctx):
            calls.append("close")

    register_calculator(StopAtFive, replace=True)
    g = graph("""
        inputs: [a]
        outputs: [out]
        nodes:
          - {calculator: StopAtFive, name: stop, inputs: {IN: a}, outputs: {OUT: out}, queue: {size: 64}}
    """)
    handle = g.start(outputs=["out"])
    for t in range(40):  # queued before the node runs, so it is handed a batch
        handle.send("a", t, timestamp=t)
    handle.close_inputs()
    assert payloads(list(handle.outputs("out"))) == [0, 1, 2, 3, 4]
    assert handle.wait(5)
    assert calls == [0, 1, 2, 3, 4, 5, "close"]
    assert handle.stats.row("stop").packets_in == 6


def test_an_error_in_the_middle_of_a_batch_names_its_timestamp_and_delivers_what_came_before():
    g = graph("""
        inputs: [a]
        outputs: [out]
        nodes:
          - {calculator: RaiseAtCalculator, name: boom, inputs: {IN: a}, outputs: {OUT: out}, options: {at: 7},
             queue: {size: 64}}
    """)
    handle = g.start(outputs=["out"])
    for t in range(30):
        handle.send("a", t, timestamp=t)
    handle.close_inputs()
    got = []
    with pytest.raises(CalculatorError) as info:
        for packet in handle.outputs("out"):  # raises the graph's error once the stream ends
            got.append(packet.payload)
    assert info.value.node == "boom" and info.value.timestamp == 7
    assert got == list(range(7))


def test_on_error_skip_goes_on_through_a_batch():
    g = graph("""
        inputs: [a]
        outputs: [out]
        nodes:
          - {calculator: RaiseAtCalculator, name: boom, inputs: {IN: a}, outputs: {OUT: out}, options: {at: 7},
             queue: {size: 64}, on_error: skip}
    """)
    out = g.run(inputs={"a": range(30)}, outputs=["out"], timeout=10)
    assert payloads(out["out"]) == [t for t in range(30) if t != 7]
    assert g.last_stats.row("boom").errors == 1


def test_a_slow_calculator_hands_each_result_on_at_once():
    # With 10 packets queued, a slow node must not wait for the whole batch before its consumer sees one.
    done = [0]
    seen_after = []
    lock = threading.Lock()

    class Slow(Calculator):
        IN = Input[int]("IN")
        OUT = Output[int]("OUT")

        def process(self, ctx):
            time.sleep(0.02)
            with lock:
                done[0] += 1
            ctx.send(self.OUT, ctx.get(self.IN))

    class Note(Calculator):
        IN = Input[int]("IN")

        def process(self, ctx):
            with lock:
                seen_after.append(done[0])

    register_calculator(Slow, replace=True)
    register_calculator(Note, replace=True)
    g = graph("""
        inputs: [a]
        nodes:
          - {calculator: Slow, name: slow, inputs: {IN: a}, outputs: {OUT: b}, queue: {size: 16}}
          - {calculator: Note, name: note, inputs: {IN: b}}
    """)
    g.run(inputs={"a": range(10)}, timeout=20)
    assert len(seen_after) == 10
    assert seen_after[0] < 5, seen_after  # one at a time, give or take a busy machine: not all 10 at the end


def test_cancel_in_the_middle_of_a_batch_stops_calling_the_node():
    calls, gate, inside, cancelled = [], threading.Event(), threading.Event(), threading.Event()

    class Gated(Calculator):
        IN = Input[int]("IN")

        def process(self, ctx):
            calls.append(ctx.timestamp)
            if ctx.timestamp == 0:
                gate.wait(5)  # until every packet is queued: the next batches are long
            if ctx.timestamp == 3:
                inside.set()
                cancelled.wait(5)

    register_calculator(Gated, replace=True)
    g = graph("""
        inputs: [a]
        nodes:
          - {calculator: Gated, name: gated, inputs: {IN: a}, queue: {size: 64}}
    """)
    handle = g.start()
    for t in range(30):
        handle.send("a", t, timestamp=t)
    gate.set()
    assert inside.wait(5)
    handle.cancel()
    cancelled.set()
    handle.wait(5)
    assert calls == [0, 1, 2, 3]
