"""Overrides: --set text and command-line flags through a graph's cli: section, applied after expansion."""
import textwrap
from pathlib import Path

import pytest

from pipelines import Graph, GraphConfigError, GraphValidationError, Override, flag_overrides, parse_graph, parse_override
from pipelines.overrides import apply_overrides

TEXT = """
    inputs: [a]
    cli:
      every: t.every
      mute: t
    nodes:
      - {calculator: PacketThinnerCalculator, name: t, inputs: {IN: a}, outputs: {OUT: b}}
"""


def config():
    return parse_graph(textwrap.dedent(TEXT), "g.yaml")


def test_set_overrides_options_and_names_unknown_nodes():
    g = Graph(parse_graph(textwrap.dedent(TEXT), overrides=["t.every=4"]))
    assert g.plan.nodes[0].options.every == 4
    with pytest.raises(GraphConfigError, match="the graph has no node 'tt'. Did you mean 't'?"):
        parse_graph(textwrap.dedent(TEXT), overrides=["tt.every=4"])
    with pytest.raises(GraphValidationError, match="unknown option 'evry'"):
        Graph(parse_graph(textwrap.dedent(TEXT), overrides=["t.evry=4"]))


def test_override_text_is_yaml_and_malformed_text_is_refused():
    assert parse_override("t.every=[1, 2]").value == [1, 2]
    assert parse_override("side_inputs.x=true").value is True
    assert parse_override("a/b.c=").value == ""
    for bad in ("every=2", "t.every", ".every=2"):
        with pytest.raises(GraphConfigError, match="expected NODE.OPTION=VALUE"):
            parse_override(bad)
    with pytest.raises(GraphConfigError, match="not valid YAML"):
        parse_override("t.every=[1,")


def test_flags_become_overrides_through_the_cli_section():
    c = config()
    overrides = flag_overrides(c, "every", 5)
    assert overrides == [Override("t", "every", 5, "--every", Path.cwd())]
    apply_overrides(c, flag_overrides(c, "mute", None, enable=True))
    assert c.node("t").enabled
    with pytest.raises(GraphConfigError, match="this graph does not take --output .*maps: every, mute"):
        flag_overrides(c, "output", "x.mp4")


def test_each_field_rule_is_the_parsers_rule():
    c = config()
    for field, value, message in (("enabled", "yes", "enabled must be true or false"),
                                  ("input_policy", "eager", "input_policy must be one of sync, immediate"),
                                  ("queue", {"size": 0}, "queue size must be a positive integer"),
                                  ("on_error", "retry", "on_error must be one of fail, skip")):
        with pytest.raises(GraphConfigError, match=message):
            apply_overrides(c, [Override("t", field, value, "test")])
        bad = TEXT.replace("outputs: {OUT: b}}", f"outputs: {{OUT: b}}, {field}: {value!r}}}")
        with pytest.raises(GraphValidationError, match=message):
            Graph(parse_graph(textwrap.dedent(bad), "g.yaml"))
