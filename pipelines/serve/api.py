"""The JSON the page and the API return, and the Prometheus collector; all read from the public GraphHandle."""
from __future__ import annotations

import dataclasses
import re
from typing import Iterable

from ..ports import type_name
from ..stats import GraphStats

#: Status words for a node when the stats carry none of their own.
RUNNING, ENDED = "running", "ended"


def graph_json(plan, video_streams: Iterable[str]) -> dict:
    """Nodes, streams and the edges between them, as the validated plan has them."""
    nodes, edges = [], []
    for rn in plan.nodes:
        nodes.append({
            "name": rn.name, "calculator": rn.config.calculator, "source": bool(rn.cls.is_source()),
            "executor": rn.config.executor,
            "inputs": [{"tag": i.tag, "stream": i.stream, "back_edge": i.back_edge, "queue_size": i.queue.size,
                        "overflow": i.queue.overflow} for i in rn.inputs],
            "outputs": [{"tag": o.tag, "stream": o.stream} for o in rn.outputs]})
        for i in rn.inputs:
            producer = plan.producers.get(i.stream, ("", None))[0]
            edges.append({"from": producer, "to": rn.name, "stream": i.stream, "tag": i.tag,
                          "back_edge": i.back_edge})
    streams = [{"name": s, "producer": producer, "type": type_name(tp)} for s, (producer, tp) in plan.producers.items()]
    return {"file": plan.config.file, "description": plan.config.description, "nodes": nodes, "streams": streams,
            "edges": edges, "inputs": list(plan.config.inputs), "outputs": list(plan.config.outputs),
            "video": list(video_streams)}


def node_status(row, done: bool) -> str:
    """What the node said it is doing (``ctx.set_status``: a source reconnecting, say), else running; once the
    graph is done, ended (or the node's failure)."""
    status = str(getattr(row, "status", "") or "")  # a stats row without the field: running or ended
    if done:
        return status if status.startswith("failed") else ENDED
    return status or RUNNING


def stats_json(stats: GraphStats, done: bool) -> dict:
    rows = []
    for row in stats.rows:
        item = dataclasses.asdict(row)
        item["status"] = node_status(row, done)
        rows.append(item)
    return {"wall_seconds": stats.wall_seconds, "done": done, "nodes": rows}


_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


def redact(source: str) -> str:
    """A source URL without its user and password (rtsp://user:pass@cam/ -> rtsp://***@cam/)."""
    return _USERINFO.sub("***@", source)


def sources_json(plan, stats: GraphStats, done: bool) -> list[dict]:
    """The graph's source nodes: what each reads (credentials removed), its frames, rate and status."""
    rows = {r.node: r for r in stats.rows}
    out = []
    for rn in plan.nodes:
        if not rn.cls.is_source():
            continue
        row = rows.get(rn.name)
        source = getattr(rn.options, "source", None)
        out.append({"name": rn.name, "calculator": rn.config.calculator,
                    "source": redact(str(source)) if source is not None else None,
                    "frames": row.packets_out if row else 0, "fps": row.fps if row else 0.0,
                    "status": node_status(row, done) if row else (ENDED if done else RUNNING)})
    return out


class GraphCollector:
    """Prometheus metrics of a running graph, read at each scrape: per-node counters and gauges (label `node`)."""

    COUNTERS = (("packets_in", "Packets taken by the node"), ("packets_out", "Packets the node sent"),
                ("drops", "Packets dropped from the node's input queues"), ("errors", "Failed process() calls"))
    GAUGES = (("fps", "fps", "Packets per second over the run"),
              ("latency_p50_ms", "latency_p50_seconds", "Median process() time"),
              ("latency_p99_ms", "latency_p99_seconds", "99th percentile process() time"),
              ("max_queue", "max_queue_depth", "Deepest the node's input queues have been"))

    def __init__(self, snapshot, feeds, streams=None):
        self._snapshot = snapshot  # () -> (GraphStats, done)
        self._feeds = feeds
        # Several streams in one process: () -> {stream name: (GraphStats, done)}; every node metric then has a
        # `stream` label, one series per stream's node.
        self._streams = streams

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        stats, done = self._snapshot()
        if self._streams is None:
            graphs, extra = [((), stats, done)], []
        else:
            graphs, extra = [((name,), s, d) for name, (s, d) in self._streams().items()], ["stream"]
        labels = extra + ["node", "calculator"]
        for field, help_text in self.COUNTERS:
            family = CounterMetricFamily(f"framegraph_node_{field}", help_text, labels=labels)
            for own, graph_stats, _ in graphs:
                for r in graph_stats.rows:
                    family.add_metric([*own, r.node, r.calculator], getattr(r, field))
            yield family
        for field, name, help_text in self.GAUGES:
            family = GaugeMetricFamily(f"framegraph_node_{name}", help_text, labels=labels)
            scale = 1e-3 if field.endswith("_ms") else 1.0
            for own, graph_stats, _ in graphs:
                for r in graph_stats.rows:
                    family.add_metric([*own, r.node, r.calculator], getattr(r, field) * scale)
            yield family
        status = GaugeMetricFamily("framegraph_node_status", "1 for the node's current status",
                                   labels=extra + ["node", "status"])
        for own, graph_stats, graph_done in graphs:
            for r in graph_stats.rows:
                status.add_metric([*own, r.node, node_status(r, graph_done)], 1.0)
        yield status
        yield GaugeMetricFamily("framegraph_wall_seconds", "Seconds since the graph started", value=stats.wall_seconds)
        viewers = GaugeMetricFamily("framegraph_video_viewers", "Browsers watching the stream", labels=["stream"])
        frames = CounterMetricFamily("framegraph_video_frames", "Frames seen on the stream", labels=["stream"])
        for feed in self._feeds:
            viewers.add_metric([feed.stream], feed.viewers)
            frames.add_metric([feed.stream], feed.frames_received)
        yield viewers
        yield frames
