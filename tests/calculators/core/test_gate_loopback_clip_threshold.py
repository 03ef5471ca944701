"""GateCalculator, PreviousLoopbackCalculator (in a real loop with a back edge), ClipVectorSizeCalculator and
ThresholdingCalculator."""
from pipelines import Graph, Packet, calculator
from pipelines.testing import CalculatorRunner


def test_gate_passes_only_allowed_timestamps_on_every_stream():

    # The harness feeds ports by tag; two IN streams need a graph of their own.
    graph = Graph.from_string("""
inputs: [a, b, allow]
outputs: [out_a, out_b]
nodes:
  - calculator: GateCalculator
    inputs: {IN: [a, b], ALLOW: allow}
    outputs: {OUT: [out_a, out_b]}
""")
    result = graph.run({"a": ["a0", "a1", "a2"], "b": ["b0", "b1", "b2"], "allow": [True, False, True]},
                       outputs=["out_a", "out_b"], timeout=10)
    assert [(p.timestamp, p.payload) for p in result["out_a"]] == [(0, "a0"), (2, "a2")]
    assert [(p.timestamp, p.payload) for p in result["out_b"]] == [(0, "b0"), (2, "b2")]


def test_gate_disallow_and_empty_packets():
    gate = CalculatorRunner("calculator: GateCalculator")
    out = gate.run({"IN": [(0, "x"), (1, "y"), (2, "z")], "DISALLOW": [(0, True), (2, False)]})
    assert [p.payload for p in out["OUT"]] == ["z"]  # timestamp 1 has no DISALLOW packet: not allowed by default
    allowing = CalculatorRunner("calculator: GateCalculator\noptions: {empty_packets_as_allow: true}")
    out = allowing.run({"IN": [(0, "x"), (1, "y"), (2, "z")], "DISALLOW": [(0, True), (2, False)]})
    assert [p.payload for p in out["OUT"]] == ["y", "z"]


@calculator(name="TestRunningSumCalculator", replace=True)
def running_sum(MAIN: int, PREV: object = None) -> int:
    return MAIN + (PREV or 0)


def test_previous_loopback_gives_the_previous_loop_value_and_empty_first():
    graph = Graph.from_string("""
inputs: [main]
outputs: [prev, total]
nodes:
  - name: loopback
    calculator: PreviousLoopbackCalculator
    inputs: {MAIN: main, LOOP: {stream: total, back_edge: true}}
    outputs: {PREV_LOOP: prev}
  - name: adder
    calculator: TestRunningSumCalculator
    inputs: {MAIN: main, PREV: prev}
    outputs: {OUT: total}
""")
    result = graph.run({"main": [Packet(t, v) for t, v in [(0, 1), (10, 2), (20, 3), (30, 4)]]}, outputs=["prev", "total"], timeout=10)
    prev = [(p.timestamp, p.payload) for p in result["prev"]]
    assert prev[0][0] == 0 and not prev[0][1]  # the first timestamp: the empty marker
    assert prev[1:] == [(10, 1), (20, 3), (30, 6)]  # each is the loop value of the timestamp before
    assert [p.payload for p in result["total"]] == [1, 3, 6, 10]


def test_previous_loopback_empty_value_and_a_missing_loop_packet():
    # LOOP has nothing at 10: the packet at 20 settles it, so MAIN at 20 gets the empty value.
    runner = CalculatorRunner("calculator: PreviousLoopbackCalculator\noptions: {empty_value: []}")
    out = runner.run({"MAIN": [(0, "m0"), (10, "m1"), (20, "m2"), (30, "m3")],
                      "LOOP": [(0, "l0"), (20, "l2")]})
    assert [(p.timestamp, p.payload) for p in out["PREV_LOOP"]] == [(0, []), (10, "l0"), (20, []), (30, "l2")]


def test_clip_vector_size_and_thresholding():
    clip = CalculatorRunner("calculator: ClipVectorSizeCalculator\noptions: {max_vec_size: 2}")
    assert [p.payload for p in clip.run({"IN": [[1, 2, 3], [4], []]})["OUT"]] == [(1, 2), (4,), ()]
    threshold = CalculatorRunner("calculator: ThresholdingCalculator\noptions: {threshold: 0.5}")
    out = threshold.run({"FLOAT": [0.2, 0.5, 0.9]})
    assert [p.payload for p in out["FLAG"]] == [False, False, True]  # strictly greater, as MediaPipe
    assert [(p.timestamp, p.payload) for p in out["ACCEPT"]] == [(2, True)]
    assert [(p.timestamp, p.payload) for p in out["REJECT"]] == [(0, False), (1, False)]


def test_split_concatenate_and_has_min_size():
    graph = Graph.from_string("""
inputs: [rects, tick]
outputs: [first, second, joined]
nodes:
  - calculator: SplitVectorCalculator
    inputs: {IN: rects}
    outputs: {OUT: [first, second]}
  - calculator: ConcatenateVectorCalculator
    inputs: {IN: [first, second], TICK: tick}
    outputs: {OUT: joined}
""")
    out = graph.run({"rects": [("a", "b", "c"), ("x",), ()], "tick": [0, 1, 2]}, outputs=["first", "second", "joined"],
                    timeout=10)
    assert [(p.timestamp, p.payload) for p in out["first"]] == [(0, "a"), (1, "x")]
    assert [(p.timestamp, p.payload) for p in out["second"]] == [(0, "b")]
    assert [p.payload for p in out["joined"]] == [("a", "b"), ("x",), ()]  # an empty tuple at every tick
    enough = CalculatorRunner("calculator: CollectionHasMinSizeCalculator\noptions: {min_size: 2}")
    assert [p.payload for p in enough.run({"ITERABLE": [[1, 2], [1], []]})["OUT"]] == [True, False, False]
