"""The front door: load_graph = parse -> expand subgraphs -> apply overrides; a node's field rules in one place."""
import textwrap

import pytest

from pipelines import GraphConfigError, load_graph
from pipelines.config import NodeConfig, QueueConfig, parse_queue, set_node_field


def node() -> NodeConfig:
    return NodeConfig(calculator="PassThroughCalculator", name="n")


def test_field_rules():
    n = node()
    assert set_node_field(n, "queue", 16) is None and n.queue == QueueConfig(16, "block")
    assert set_node_field(n, "queue", {"size": 2, "overflow": "drop_oldest"}) is None and n.queue.overflow == "drop_oldest"
    assert set_node_field(n, "input_policy", "immediate") is None and n.input_policy == "immediate"
    assert set_node_field(n, "on_error", "skip") is None and n.on_error == "skip"
    assert set_node_field(n, "executor", "pool") is None and n.executor == "pool"
    assert set_node_field(n, "enabled", False) is None and not n.enabled
    assert set_node_field(n, "enabled", "no") == "enabled must be true or false, got 'no'"
    assert not n.enabled  # a wrong value leaves the field as it was
    with pytest.raises(KeyError):
        set_node_field(n, "options", {})


def test_a_queue_spec_reports_every_fault():
    queue, error = parse_queue({"size": 0, "overflow": "lose", "sise": 1})
    assert queue is None
    assert error == ("queue: unknown queue key 'sise'. Did you mean 'size'? Valid: size, overflow; queue size must be "
                     "a positive integer, got 0; queue overflow must be one of block, drop_oldest, drop_newest, got 'lose'")


def test_load_graph_runs_the_steps_in_order(tmp_path):
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "thin.yaml").write_text(textwrap.dedent("""
        inputs: {IN: x}
        outputs: {OUT: y}
        options: {every: 2}
        nodes: [{calculator: PacketThinnerCalculator, name: t, inputs: {IN: x}, outputs: {OUT: y}, options: {every: "${options.every}"}}]
    """))
    (tmp_path / "g.yaml").write_text("inputs: [a]\nnodes: [{calculator: thin, inputs: {IN: a}, outputs: {OUT: b}}]\n")
    config = load_graph(tmp_path / "g.yaml", ["thin.every=5"])
    (inner,) = config.nodes
    assert inner.name == "thin/t" and inner.options == {"every": 5} and inner.raw_options == {"every": "${options.every}"}
    assert config.subgraphs["thin"].values == {"every": 5}
    assert inner.inputs["IN"][0].stream == "a" and inner.outputs["OUT"] == ["b"]
    with pytest.raises(GraphConfigError, match="graph file not found"):
        load_graph(tmp_path / "missing.yaml")
