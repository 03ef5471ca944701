"""Subgraphs: inlined under the using node's name, options substituted, overridable after expansion."""
import textwrap

import pytest

from pipelines import Graph, GraphConfigError, GraphValidationError, Override, parse_graph

DOUBLE_THIN = """
    # Thin a stream twice: every Nth packet, then pass it through.
    inputs: {IN: x}
    outputs: {OUT: y}
    options: {every: 2}
    nodes:
      - {calculator: PacketThinnerCalculator, name: first, inputs: {IN: x}, outputs: {OUT: mid}, options: {every: "${options.every}"}}
      - {calculator: PassThroughCalculator, name: second, inputs: {IN: mid}, outputs: {OUT: y}}
"""

USES_IT = """
    inputs: [a]
    outputs: [b]
    nodes:
      - {calculator: double_thin, name: thin, inputs: {IN: a}, outputs: {OUT: b}, options: {every: 3}}
"""


@pytest.fixture
def modules(tmp_path):
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "double_thin.yaml").write_text(textwrap.dedent(DOUBLE_THIN))
    return tmp_path


def build(text, base_dir, overrides=None) -> Graph:
    return Graph(parse_graph(textwrap.dedent(text), "g.yaml", base_dir=base_dir, overrides=overrides))


def test_subgraph_is_usable_as_a_calculator(modules):
    g = build(USES_IT, modules)
    assert [n.name for n in g.plan.nodes] == ["thin/first", "thin/second"]
    out = g.run(inputs={"a": range(7)}, outputs=["b"])
    assert [p.payload for p in out["b"]] == [0, 3, 6]
    with pytest.raises(GraphValidationError, match="unknown subgraph 'double_thin' option 'evry'. Did you mean 'every'"):
        build(USES_IT.replace("every: 3", "evry: 3"), modules)


def test_an_override_of_a_subgraph_option_reaches_its_nodes_after_expansion(modules):
    g = build(USES_IT, modules, overrides=["thin.every=2"])
    assert g.plan.nodes[0].options.every == 2
    out = g.run(inputs={"a": range(7)}, outputs=["b"])
    assert [p.payload for p in out["b"]] == [0, 2, 4, 6]
    # The subgraph's default applies where the using node says nothing.
    g = build(USES_IT.replace(", options: {every: 3}", ""), modules)
    assert g.plan.nodes[0].options.every == 2


def test_an_override_of_an_inner_node_wins_and_unknown_subgraph_options_are_refused(modules):
    g = build(USES_IT, modules, overrides=["thin/first.every=5"])
    assert g.plan.nodes[0].options.every == 5
    with pytest.raises(GraphConfigError, match="unknown subgraph 'double_thin' .* option 'evry'. Did you mean 'every'"):
        build(USES_IT, modules, overrides=["thin.evry=5"])


def test_node_fields_of_a_subgraph_instance_apply_to_every_inner_node(modules):
    config = parse_graph(textwrap.dedent(USES_IT), "g.yaml", base_dir=modules,
                         overrides=[Override("thin", "on_error", "skip"), "thin.queue={size: 3}"])
    assert {n.on_error for n in config.nodes} == {"skip"}
    assert {n.queue.size for n in config.nodes} == {3}
    with pytest.raises(GraphConfigError, match="on_error must be one of fail, skip"):
        parse_graph(textwrap.dedent(USES_IT), "g.yaml", base_dir=modules, overrides=["thin.on_error=sometimes"])


def test_nested_subgraphs_pass_options_down(modules):
    (modules / "modules" / "outer.yaml").write_text(textwrap.dedent("""
        inputs: {IN: x}
        outputs: {OUT: y}
        options: {n: 4}
        nodes:
          - {calculator: double_thin, name: inner, inputs: {IN: x}, outputs: {OUT: y}, options: {every: "${options.n}"}}
    """))
    text = "inputs: [a]\noutputs: [b]\nnodes: [{calculator: outer, name: o, inputs: {IN: a}, outputs: {OUT: b}}]\n"
    g = build(text, modules)
    assert [n.name for n in g.plan.nodes] == ["o/inner/first", "o/inner/second"]
    assert g.plan.nodes[0].options.every == 4
    g = build(text, modules, overrides=["o.n=3"])
    assert g.plan.nodes[0].options.every == 3
    assert [p.payload for p in g.run(inputs={"a": range(7)}, outputs=["b"])["b"]] == [0, 3, 6]


def test_a_subgraph_that_includes_itself_is_refused(tmp_path):
    (tmp_path / "loop.yaml").write_text("inputs: {IN: x}\noutputs: {OUT: y}\n"
                                       "nodes: [{calculator: loop.yaml, inputs: {IN: x}, outputs: {OUT: y}}]\n")
    with pytest.raises(GraphValidationError, match="includes itself"):
        build("inputs: [a]\nnodes: [{calculator: loop.yaml, inputs: {IN: a}, outputs: {OUT: b}}]\n", tmp_path)


def test_a_reference_to_an_undeclared_option_is_reported(modules):
    (modules / "modules" / "bad.yaml").write_text(
        "inputs: {IN: x}\noutputs: {OUT: y}\noptions: {every: 2}\n"
        "nodes: [{calculator: PacketThinnerCalculator, inputs: {IN: x}, outputs: {OUT: y}, options: {every: '${options.evrey}'}}]\n")
    with pytest.raises(GraphValidationError, match=r"'\$\{options.evrey\}' names no option of subgraph 'bad'"):
        build("inputs: [a]\nnodes: [{calculator: bad, inputs: {IN: a}, outputs: {OUT: b}}]\n", modules)


def test_built_in_modules_are_found_from_any_folder(tmp_path):
    text = """
        inputs: [frames]
        nodes:
          - {calculator: face_detection_short_range, name: face_detection, inputs: {IMAGE: frames}, outputs: {DETECTIONS: faces}}
    """
    g = build(text, tmp_path)
    assert "face_detection/inference" in [n.name for n in g.plan.nodes]
