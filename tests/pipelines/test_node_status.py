"""A calculator's published status (CalculatorContext.set_status): in the stats rows while it runs and after, and
as a column of the --stats table only when some node set one."""
import threading
from typing import Any

from pipelines import Calculator, Graph, Input, register_calculator


class StatusPerPacket(Calculator):
    """Publishes "seen N" after each packet; waits at packet 3 until the test has looked at the live stats."""

    IN = Input[Any]("IN")
    reached_three = threading.Event()
    may_go_on = threading.Event()

    def process(self, ctx):
        ctx.set_status(f"seen {ctx.get(self.IN)}")
        if ctx.get(self.IN) == 3:
            type(self).reached_three.set()
            type(self).may_go_on.wait(10)


register_calculator(StatusPerPacket, replace=True)


def test_status_shows_live_and_after_the_run_and_in_the_table():
    graph = Graph.from_string("""
        nodes:
          - {calculator: CountingSource, name: src, outputs: {OUT: n}, options: {count: 5}}
          - {calculator: StatusPerPacket, name: watcher, inputs: {IN: n}}
    """, "t.yaml")
    handle = graph.start()
    assert StatusPerPacket.reached_three.wait(10)
    live = handle.stats
    assert live.row("watcher").status == "seen 3" and live.row("src").status == ""
    StatusPerPacket.may_go_on.set()
    assert handle.wait(10)
    stats = handle.stats
    assert stats.row("watcher").status == "seen 4"  # CountingSource counts 0..4
    head, rule, src, watcher = stats.table().splitlines()[:4]
    assert head.split()[-1] == "status" and watcher.split()[0] == "watcher" and watcher.endswith("seen 4")
    assert src.endswith(" 0")  # src set none: its status cell is empty, the row ends with its errors


def test_no_status_column_when_no_node_sets_one():
    graph = Graph.from_string("""
        nodes:
          - {calculator: CountingSource, name: src, outputs: {OUT: n}, options: {count: 3}}
          - {calculator: PassThroughCalculator, name: pass, inputs: {IN: n}, outputs: {OUT: m}}
    """, "t.yaml")
    graph.run(timeout=10)
    assert "status" not in graph.last_stats.table().splitlines()[0]
    assert graph.last_stats.row("pass").status == ""
