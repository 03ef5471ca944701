"""Validation before the first packet: every fault, located by file, line, node and calculator."""
from graph_checks import check, issues_of
from pipelines import Graph


def test_unknown_calculator_suggests_close_names():
    (msg,) = issues_of("""
        nodes:
          - calculator: PassThruCalculator
            inputs: {IN: a}
    """)
    assert msg.startswith('g.yaml:3: node "pass_thru" (PassThruCalculator): unknown calculator')
    assert "Did you mean 'PassThroughCalculator'" in msg


def test_unknown_option_suggests_and_lists_valid():
    (msg,) = issues_of("""
        inputs: [a]
        nodes:
          - calculator: PacketThinnerCalculator
            name: thinner
            inputs: {IN: a}
            options: {evry: 2}
    """)
    assert msg == ('g.yaml:7: node "thinner" (PacketThinnerCalculator): unknown option \'evry\'. '
                   "Did you mean 'every'? Valid: every, max_fps")


def test_mistyped_option_value_says_expected_and_got():
    (msg,) = issues_of("""
        inputs: [a]
        nodes:
          - calculator: PacketThinnerCalculator
            inputs: {IN: a}
            options:
              every: three
    """)
    assert "g.yaml:7:" in msg and "option 'every': expected an integer, got 'three'" in msg


def test_option_post_init_check_is_reported():
    (msg,) = issues_of("""
        inputs: [a]
        nodes:
          - {calculator: PacketThinnerCalculator, inputs: {IN: a}, options: {every: 0}}
    """)
    assert "every must be >= 1, got 0" in msg


def test_stream_without_producer_and_stream_produced_twice():
    msgs = issues_of("""
        inputs: [a]
        nodes:
          - {calculator: PassThroughCalculator, name: p1, inputs: {IN: a}, outputs: {OUT: b}}
          - {calculator: PassThroughCalculator, name: p2, inputs: {IN: a}, outputs: {OUT: b}}
          - {calculator: PassThroughCalculator, name: p3, inputs: {IN: c}, outputs: {OUT: d}}
    """)
    assert any("stream 'b' is produced twice" in m and 'node "p2"' in m for m in msgs)
    assert any('node "p3"' in m and "consumes stream 'c', which no node produces" in m for m in msgs)


def test_required_port_unconnected_and_unknown_port():
    msgs = issues_of("""
        inputs: [a]
        nodes:
          - {calculator: PacketClonerCalculator, name: cloner, inputs: {IN: a, TIK: a}}
    """)
    assert any("unknown input port 'TIK'. Did you mean 'TICK'?" in m for m in msgs)
    assert any("required input TICK (Any) is not connected" in m for m in msgs)


def test_port_type_mismatch_is_reported():
    (msg,) = issues_of("""
        nodes:
          - {calculator: CountingSource, name: numbers, outputs: {OUT: n}}
          - {calculator: CountingSource, name: more, outputs: {OUT: m}}
          - {calculator: AddCalculator, name: add, inputs: {A: n, B: m}, outputs: {MISSING: which}}
          - {calculator: RaiseAtCalculator, name: consumer, inputs: {IN: which}}
    """)
    assert msg == ('g.yaml:6: node "consumer" (RaiseAtCalculator): input IN expects int, '
                   "but stream 'which' carries str (from node \"add\")")


def test_cycle_without_back_edge_is_refused_and_back_edge_accepted():
    text = """
        inputs: [a]
        nodes:
          - {calculator: FlowLimiterCalculator, name: limiter, inputs: {IMAGE: a, FINISHED: %s}, outputs: {IMAGE: b}}
          - {calculator: PassThroughCalculator, name: work, inputs: {IN: b}, outputs: {OUT: done}}
    """
    (msg,) = issues_of(text % "done")
    assert "cycle without a declared back edge: limiter -> work -> limiter" in msg
    check(text % "{stream: done, back_edge: true}")


def test_every_fault_is_reported_at_once():
    msgs = issues_of("""
        inputs: [a]
        nodes:
          - {calculator: Nope, inputs: {IN: a}}
          - {calculator: PacketThinnerCalculator, inputs: {IN: a}, options: {bogus: 1}}
          - {calculator: PassThroughCalculator, inputs: {IN: zzz}}
    """)
    assert len(msgs) == 3


def test_run_graph_shipped_graphs_validate():
    from pathlib import Path

    from pipelines import load_graph

    root = Path(__file__).resolve().parents[2] / "graphs"
    for path in sorted(root.glob("*.yaml")):
        Graph(load_graph(path))


def test_a_calculators_own_check_is_reported_with_file_line_and_node():
    from dataclasses import dataclass

    from pipelines import Calculator, register_calculator
    from pipelines.registry import unregister_calculator

    @register_calculator
    class CheckedCalculator(Calculator):
        @dataclass(frozen=True)
        class Options:
            low: int = 0
            high: int = 1

        @classmethod
        def check(cls, options):
            return [f"low ({options.low}) must be below high ({options.high})"] if options.low >= options.high else []

        def process(self, ctx):
            pass

    try:
        check("nodes: [{calculator: CheckedCalculator, name: c, options: {low: 1, high: 2}}]")
        (msg,) = issues_of("nodes:\n  - {calculator: CheckedCalculator, name: c, options: {low: 3, high: 2}}\n")
        assert msg == 'g.yaml:2: node "c" (CheckedCalculator): low (3) must be below high (2)'
    finally:
        unregister_calculator("CheckedCalculator")
