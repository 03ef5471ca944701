"""Validation before the first packet: every fault, located by file, line, node and calculator."""
import textwrap

import pytest

from pipelines import Graph, GraphConfigError, GraphValidationError, parse_graph


def check(text: str, **kwargs) -> Graph:
    return Graph(parse_graph(textwrap.dedent(text), "g.yaml", **kwargs))


def issues_of(text: str) -> list[str]:
    with pytest.raises(GraphValidationError) as info:
        check(text)
    return [str(i) for i in info.value.issues]


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


def test_yaml_syntax_error_names_file_and_line():
    with pytest.raises(GraphConfigError, match=r"^g.yaml:3: invalid YAML: .*"):
        check("nodes:\n  - calculator: X\n    inputs: {IN: a]\n")


def test_python_tags_never_construct_objects(tmp_path):
    marker = tmp_path / "pwned"
    text = f"nodes: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(GraphConfigError, match=r"YAML tag '!!python/object/apply:os.system' is not allowed"):
        check(text)
    assert not marker.exists()


def test_duplicate_keys_are_refused():
    with pytest.raises(GraphConfigError, match="duplicate key 'options'"):
        check("nodes:\n  - calculator: PassThroughCalculator\n    options: {}\n    options: {}\n")


def test_every_fault_is_reported_at_once():
    msgs = issues_of("""
        inputs: [a]
        nodes:
          - {calculator: Nope, inputs: {IN: a}}
          - {calculator: PacketThinnerCalculator, inputs: {IN: a}, options: {bogus: 1}}
          - {calculator: PassThroughCalculator, inputs: {IN: zzz}}
    """)
    assert len(msgs) == 3


def test_unknown_node_keys_and_policies():
    msgs = issues_of("""
        inputs: [a]
        nodes:
          - calculator: PassThroughCalculator
            inputs: {IN: a}
            optionz: {}
            input_policy: eager
            queue: {size: 0, overflow: sometimes}
    """)
    text = "\n".join(msgs)
    assert "unknown node key 'optionz'. Did you mean 'options'?" in text
    assert "input_policy must be one of sync, immediate, got 'eager'" in text
    assert "queue size must be a positive integer, got 0" in text
    assert "queue overflow must be one of block, drop_oldest, drop_newest" in text


def test_env_interpolation_keeps_types(monkeypatch):
    monkeypatch.setenv("FG_EVERY", "3")
    g = check("""
        inputs: [a]
        nodes:
          - {calculator: PacketThinnerCalculator, name: t, inputs: {IN: a}, options: {every: "${env:FG_EVERY,1}", max_fps: "${env:FG_UNSET,2.5}"}}
    """)
    assert g.plan.nodes[0].options.every == 3 and g.plan.nodes[0].options.max_fps == 2.5


def test_env_without_default_is_an_error():
    with pytest.raises(GraphConfigError, match="environment variable 'FG_SURELY_UNSET' is not set"):
        check("nodes: [{calculator: PassThroughCalculator, options: {x: '${env:FG_SURELY_UNSET}'}}]")


def test_set_overrides_options_and_names_unknown_nodes():
    text = "inputs: [a]\nnodes: [{calculator: PacketThinnerCalculator, name: t, inputs: {IN: a}}]\n"
    g = Graph(parse_graph(text, overrides=["t.every=4"]))
    assert g.plan.nodes[0].options.every == 4
    with pytest.raises(GraphConfigError, match="the graph has no node 'tt'. Did you mean 't'?"):
        parse_graph(text, overrides=["tt.every=4"])
    with pytest.raises(GraphValidationError, match="unknown option 'evry'"):
        Graph(parse_graph(text, overrides=["t.evry=4"]))


def test_subgraph_is_usable_as_a_calculator(tmp_path):
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "double_thin.yaml").write_text(textwrap.dedent("""
        inputs: {IN: x}
        outputs: {OUT: y}
        options: {every: 2}
        nodes:
          - {calculator: PacketThinnerCalculator, name: first, inputs: {IN: x}, outputs: {OUT: mid}, options: {every: "${options.every}"}}
          - {calculator: PassThroughCalculator, name: second, inputs: {IN: mid}, outputs: {OUT: y}}
    """))
    text = """
        inputs: [a]
        outputs: [b]
        nodes:
          - {calculator: double_thin, name: thin, inputs: {IN: a}, outputs: {OUT: b}, options: {every: 3}}
    """
    g = check(text, base_dir=tmp_path)
    assert [n.name for n in g.plan.nodes] == ["thin/first", "thin/second"]
    out = g.run(inputs={"a": range(7)}, outputs=["b"])
    assert [p.payload for p in out["b"]] == [0, 3, 6]
    with pytest.raises(GraphValidationError, match="unknown subgraph 'double_thin' option 'evry'. Did you mean 'every'"):
        check(text.replace("every: 3", "evry: 3"), base_dir=tmp_path)


def test_run_graph_shipped_graphs_validate():
    from pathlib import Path

    from pipelines import load_graph

    root = Path(__file__).resolve().parents[2] / "graphs"
    for path in sorted(root.glob("*.yaml")):
        Graph(load_graph(path))
