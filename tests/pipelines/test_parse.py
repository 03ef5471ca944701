"""Parsing graph files: safe YAML with lines, environment references, node keys and field rules."""
import pytest

from graph_checks import check, issues_of
from pipelines import GraphConfigError


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


def test_default_names_come_from_the_calculator_and_are_unique():
    from pipelines.parse import parse_text

    g = parse_text("nodes: [{calculator: SsdAnchorsCalculator}, {calculator: SsdAnchorsCalculator},"
                   " {calculator: PassThroughCalculator, name: ssd_anchors_3}, {calculator: SsdAnchorsCalculator}]")
    assert [n.name for n in g.nodes] == ["ssd_anchors", "ssd_anchors_2", "ssd_anchors_3", "ssd_anchors_4"]


def test_yaml_off_and_on_keys_are_plain_strings_in_cli_targets():
    from pipelines.parse import parse_text

    g = parse_text("cli: {source: a.source, output: [b.path, c.path]}\nnodes: []\n")
    assert g.cli == {"source": ["a.source"], "output": ["b.path", "c.path"]}
    bad = parse_text("cli: {source: 3}\nnodes: []\n")
    assert "cli: 'source' must name a NODE.OPTION target" in str(bad.issues[0])
