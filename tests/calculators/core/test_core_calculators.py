"""The built-in core calculators, each through the CalculatorRunner harness."""
from pipelines import Packet
from pipelines.testing import CalculatorRunner


def test_pass_through_keeps_payloads_and_timestamps():
    out = CalculatorRunner("calculator: PassThroughCalculator").run({"IN": [(3, "a"), (7, "b")]})
    assert out["OUT"] == [Packet(3, "a"), Packet(7, "b")]


def test_packet_thinner_every_nth_and_max_fps():
    every = CalculatorRunner("calculator: PacketThinnerCalculator\noptions: {every: 3}")
    assert [p.payload for p in every.run({"IN": list(range(10))})["OUT"]] == [0, 3, 6, 9]
    # 100 packets 10 ms apart (100 fps) thinned to at most 25 fps: every 40 ms.
    fps = CalculatorRunner("calculator: PacketThinnerCalculator\noptions: {max_fps: 25}")
    kept = [p.timestamp for p in fps.run({"IN": [(i * 10_000, i) for i in range(100)]})["OUT"]]
    assert kept == list(range(0, 1_000_000, 40_000))


def test_packet_cloner_repeats_the_latest_packet_at_every_tick():
    out = CalculatorRunner("calculator: PacketClonerCalculator").run({
        "IN": [(0, "first"), (25, "second")],
        "TICK": [(t, t) for t in range(0, 50, 10)],
    })
    assert [(p.timestamp, p.payload) for p in out["OUT"]] == [
        (0, "first"), (10, "first"), (20, "first"), (30, "second"), (40, "second")]


def test_callback_sink_calls_the_side_input_with_every_packet():
    seen = []
    CalculatorRunner("calculator: CallbackSink\noptions: {callback: on_packet}").run(
        {"IN": ["x", "y"]}, side_inputs={"on_packet": seen.append})
    assert seen == [Packet(0, "x"), Packet(1, "y")]

