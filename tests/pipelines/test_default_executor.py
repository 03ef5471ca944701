"""``executors: {default: {threads: N}}`` (and ``--threads N``): nodes that name no executor share those threads
instead of running on a thread each; named executors and parallel nodes keep theirs."""
import threading

import pytest

from pipelines import Calculator, Graph, GraphConfigError, Input, Output, Packet, register_calculator
from pipelines.batch_driver import cores_per_file
from pipelines.cli import main

SEEN: dict[str, set[str]] = {}


class ThreadNoteCalculator(Calculator):
    """Records the thread each call ran on, under the node's name, and passes IN on. Ports: IN (int) -> OUT (int)"""

    IN = Input[int]("IN")
    OUT = Output[int]("OUT")

    def process(self, ctx):
        SEEN.setdefault(ctx.node_name, set()).add(threading.current_thread().name)
        ctx.send(self.OUT, ctx.get(self.IN))


register_calculator(ThreadNoteCalculator, replace=True)

GRAPH = """
inputs: [a]
outputs: [d]
{executors}
nodes:
  - {{calculator: ThreadNoteCalculator, name: one, inputs: {{IN: a}}, outputs: {{OUT: b}}}}
  - {{calculator: ThreadNoteCalculator, name: two, inputs: {{IN: b}}, outputs: {{OUT: c}}}}
  - {{calculator: ThreadNoteCalculator, name: three, inputs: {{IN: c}}, outputs: {{OUT: d}}, executor: own}}
"""


def run(executors: str) -> dict[str, set[str]]:
    SEEN.clear()
    graph = Graph.from_string(GRAPH.format(executors=executors), "t.yaml")
    out = graph.run(inputs={"a": [Packet(t, t) for t in range(50)]}, outputs=["d"], timeout=10)
    assert [p.payload for p in out["d"]] == list(range(50))
    return dict(SEEN)


def test_without_a_default_executor_each_node_has_a_thread_of_its_own():
    seen = run("executors: {own: {threads: 1}}")
    assert seen["one"] != seen["two"] and len(seen["one"]) == len(seen["two"]) == 1
    assert seen["three"] == {"framegraph-own"}


def test_a_default_executor_is_shared_by_the_nodes_that_name_none():
    seen = run("executors: {default: {threads: 1}, own: {threads: 1}}")
    assert seen["one"] == seen["two"] == {"framegraph-default"}
    assert seen["three"] == {"framegraph-own"}, "a node that names its executor keeps it"


def test_threads_flag_is_checked_and_counted_per_file(capsys):
    graph = Graph.from_string(GRAPH.format(executors="executors: {own: {threads: 1}}"), "t.yaml")
    config = graph.config
    with pytest.raises(GraphConfigError, match="--threads must be a positive integer, got 0"):
        config.set_default_threads(0)
    assert cores_per_file(config) == 1 and cores_per_file(config, threads=2) == 3
    assert main(["face_detect", "--threads", "0", "--validate"]) == 2
    assert "--threads must be a positive integer" in capsys.readouterr().err


def test_share_threads_puts_every_thread_executors_node_on_one_thread_and_keeps_process_executors():
    from pipelines.config import parse_graph

    config = parse_graph(GRAPH.format(executors="executors: {own: {threads: 2}, heavy: {processes: 2}}"), "t.yaml")
    config.node("two").executor = "heavy"
    config.share_threads(1)
    assert {name: (ex.threads, ex.processes) for name, ex in config.executors.items()} == {
        "default": (1, 0), "heavy": (2, 2)}
    assert [n.executor for n in config.nodes] == [None, "heavy", None]
    SEEN.clear()
    config.node("two").executor = None  # run it here: the process executor itself is tested elsewhere
    out = Graph(config).run(inputs={"a": [Packet(t, t) for t in range(50)]}, outputs=["d"], timeout=10)
    assert [p.payload for p in out["d"]] == list(range(50))
    assert SEEN == {"one": {"framegraph-default"}, "two": {"framegraph-default"}, "three": {"framegraph-default"}}
