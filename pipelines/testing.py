"""Test harness: run one calculator from an inline YAML node and lists of timestamped packets.

    runner = CalculatorRunner('''
        calculator: PacketThinnerCalculator
        options: {every: 2}
    ''')
    out = runner.run({"IN": [(0, "a"), (1, "b"), (2, "c")]})
    assert [p.payload for p in out["OUT"]] == ["a", "c"]

Every input port named in `run()` (or in the snippet's `inputs:`) is fed from a graph input; every output
port is observed. Payloads without timestamps get 0, 1, 2, ...
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import yaml

from .registry import CALCULATORS
from .config import parse_graph
from .graph import Graph
from .packet import Packet


class CalculatorRunner:
    def __init__(self, node_yaml: str, timeout: float = 30.0):
        node = yaml.safe_load(node_yaml)
        if not isinstance(node, dict) or "calculator" not in node:
            raise ValueError("CalculatorRunner takes one node as YAML, with at least 'calculator:'")
        self.node = node
        self.cls = CALCULATORS.get(node["calculator"])
        self.timeout = timeout
        self.graph: Graph | None = None

    def _graph(self, tags: Iterable[str]) -> Graph:
        node = dict(self.node)
        inputs = {tag: f"in_{tag.lower()}" for tag in tags}
        for tag, spec in (self.node.get("inputs") or {}).items():
            inputs.setdefault(tag, spec)
        outputs = {tag: f"out_{tag.lower()}" for tag in self.cls.output_ports()}
        outputs.update(self.node.get("outputs") or {})
        node["inputs"], node["outputs"] = inputs, outputs
        config = {
            "inputs": sorted({s if isinstance(s, str) else s["stream"] for s in inputs.values()}),
            "outputs": sorted(outputs.values()),
            "nodes": [node],
        }
        return Graph(parse_graph(yaml.safe_dump(config), "<CalculatorRunner>"))

    def run(self, inputs: Mapping[str, Iterable[Any]] | None = None,
            side_inputs: Mapping[str, Any] | None = None) -> dict[str, list[Packet]]:
        """Feed `inputs` (port tag -> payloads or (timestamp, payload) pairs) and return outputs by port tag."""
        inputs = dict(inputs or {})
        self.graph = graph = self._graph(inputs)
        node = graph.config.nodes[0]
        feed = {}
        for tag, items in inputs.items():
            stream = node.inputs[tag][0].stream
            feed[stream] = [_packet(i, item) for i, item in enumerate(items)]
        result = graph.run(feed, outputs=[s for ss in node.outputs.values() for s in ss],
                           side_inputs=side_inputs, timeout=self.timeout)
        self.stats = graph.last_stats
        return {tag: result[streams[0]] for tag, streams in node.outputs.items()}


def _packet(index: int, item: Any) -> Packet:
    if isinstance(item, Packet):
        return item
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], int):
        return Packet(item[0], item[1])
    return Packet(index, item)
