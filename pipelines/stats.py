"""Per-node run statistics (``--stats``) and Chrome/Perfetto trace events (``--trace``)."""
from __future__ import annotations

import json
import os
from array import array
from dataclasses import dataclass
from pathlib import Path

#: Latency percentiles cover a node's most recent calls, this many: fixed memory however long a graph runs (a
#: camera watched for days), and figures that follow what the node does now.
LATENCY_WINDOW = 8192


class LatencyWindow:
    """Seconds per call: how many calls there were, and the last `size` of them in a ring of fixed size."""

    __slots__ = ("count", "size", "_ring")

    def __init__(self, size: int = LATENCY_WINDOW):
        self.count = 0
        self.size = size
        self._ring = array("d", bytes(8 * size))

    def append(self, seconds: float) -> None:
        self._ring[self.count % self.size] = seconds
        self.count += 1

    def __len__(self) -> int:
        return self.count

    def recent(self) -> list[float]:
        """The latest min(count, size) latencies (in no particular order)."""
        return self._ring[:self.count].tolist() if self.count < self.size else self._ring.tolist()


@dataclass(frozen=True)
class NodeStatsRow:
    """One node's figures; latency p50/p99 are over its last `LATENCY_WINDOW` calls, the rest over the run."""

    node: str
    calculator: str
    packets_in: int
    packets_out: int
    fps: float
    latency_p50_ms: float
    latency_p99_ms: float
    max_queue: int
    drops: int
    errors: int
    status: str = ""  # the node's latest CalculatorContext.set_status, "" when it set none


@dataclass(frozen=True)
class GraphStats:
    rows: list[NodeStatsRow]
    wall_seconds: float

    def table(self) -> str:
        head = ("node", "calculator", "in", "out", "fps", "p50 ms", "p99 ms", "max queue", "drops", "errors")
        body = [(r.node, r.calculator, str(r.packets_in), str(r.packets_out), f"{r.fps:.1f}",
                 f"{r.latency_p50_ms:.2f}", f"{r.latency_p99_ms:.2f}", str(r.max_queue), str(r.drops), str(r.errors))
                for r in self.rows]
        widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
        if any(r.status for r in self.rows):  # a column only when some node published a status
            head, body = (*head, "status"), [(*row, r.status) for row, r in zip(body, self.rows)]
            widths.append(max(len(row[-1]) for row in [head, *body]))
        left = {0, 1, len(head) - 1} if head[-1] == "status" else {0, 1}
        lines = ["  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                 .rstrip() for row in [head, *body]]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"wall time {self.wall_seconds:.2f} s")
        return "\n".join(lines)

    def row(self, node: str) -> NodeStatsRow:
        return next(r for r in self.rows if r.node == node)


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[k]


def collect_stats(runner) -> GraphStats:
    import time

    end = runner.finished_at or time.perf_counter()
    wall = max(1e-9, end - runner.started_at) if runner.started_at else 0.0
    rows = []
    for node in runner.nodes:
        s = node.stats
        lat = sorted(s.latencies.recent())
        count = s.packets_out if node.is_source else len(s.latencies)
        rows.append(NodeStatsRow(
            node=node.name, calculator=node.calculator_name, packets_in=s.packets_in, packets_out=s.packets_out,
            fps=count / wall if wall else 0.0,
            latency_p50_ms=_percentile(lat, 0.5) * 1e3, latency_p99_ms=_percentile(lat, 0.99) * 1e3,
            max_queue=max((q.max_depth for q in node.inputs), default=0),
            drops=sum(q.drops for q in node.inputs), errors=s.errors, status=s.status))
    return GraphStats(rows, wall)


def write_trace(events: list, started_at: float, path: str | os.PathLike) -> None:
    """Write Chrome trace-event JSON (open in chrome://tracing or ui.perfetto.dev): one slice per call."""
    pid = os.getpid()
    out = [{"name": "process_name", "ph": "M", "pid": pid, "args": {"name": "framegraph"}}]
    threads: dict[int, str] = {}
    for node, tid, start, end, ts, method in events:
        threads.setdefault(tid, node)
        out.append({"name": node, "cat": method, "ph": "X", "pid": pid, "tid": tid,
                    "ts": (start - started_at) * 1e6, "dur": (end - start) * 1e6,
                    "args": {"timestamp": ts}})
    for tid, node in threads.items():
        out.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": node}})
    Path(path).write_text(json.dumps({"traceEvents": out, "displayTimeUnit": "ms"}))
