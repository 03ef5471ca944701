"""Runtime cost per packet per hop: 8 pass-through nodes against a bare thread + queue.Queue chain.

Both run in the same process, interleaved over several rounds, and the ratio of medians is reported,
because shared machines are noisy. Goal: ratio <= 1.5.

    python benchmarks/overhead.py [--packets 20000] [--hops 8] [--rounds 5]
"""
from __future__ import annotations

import argparse
import queue
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines import Graph  # noqa: E402

_END = object()


def bare_chain(packets: int, hops: int, maxsize: int = 8) -> float:
    """The hand-written baseline: one thread per hop, bounded queue.Queue between them."""
    queues = [queue.Queue(maxsize) for _ in range(hops + 1)]

    def hop(src: queue.Queue, dst: queue.Queue) -> None:
        while True:
            item = src.get()
            dst.put(item)
            if item is _END:
                return

    threads = [threading.Thread(target=hop, args=(queues[i], queues[i + 1]), daemon=True) for i in range(hops)]
    for t in threads:
        t.start()
    out = queues[-1]
    received = 0

    def feed() -> None:
        for i in range(packets):
            queues[0].put((i, i))
        queues[0].put(_END)

    start = time.perf_counter()
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    while out.get() is not _END:
        received += 1
    elapsed = time.perf_counter() - start
    assert received == packets
    return elapsed


def graph_text(hops: int) -> str:
    nodes = []
    for i in range(hops):
        src = "in" if i == 0 else f"s{i}"
        dst = "out" if i == hops - 1 else f"s{i + 1}"
        nodes.append(f"  - {{calculator: PassThroughCalculator, inputs: {{IN: {src}}}, outputs: {{OUT: {dst}}}}}")
    return "inputs: [in]\noutputs: [out]\nnodes:\n" + "\n".join(nodes) + "\n"


def graph_chain(graph: Graph, packets: int) -> float:
    start = time.perf_counter()
    result = graph.run(inputs={"in": range(packets)}, outputs=["out"])
    elapsed = time.perf_counter() - start
    assert len(result["out"]) == packets
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--hops", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    graph = Graph.from_string(graph_text(args.hops))
    bare_chain(1000, args.hops)
    graph_chain(graph, 1000)  # warm up imports and caches
    bare, ours = [], []
    for _ in range(args.rounds):
        bare.append(bare_chain(args.packets, args.hops))
        ours.append(graph_chain(graph, args.packets))
    b, g = statistics.median(bare), statistics.median(ours)
    per_hop = lambda s: s / args.packets / args.hops * 1e6  # noqa: E731
    print(f"{args.hops} hops x {args.packets} packets, median of {args.rounds} rounds")
    print(f"bare thread+queue.Queue chain: {b:.3f} s  ({per_hop(b):.2f} us per packet per hop)")
    print(f"framegraph pass-through chain: {g:.3f} s  ({per_hop(g):.2f} us per packet per hop)")
    print(f"ratio framegraph/bare: {g / b:.2f}x  (goal <= 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
