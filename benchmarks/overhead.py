"""Runtime cost per packet per hop: a chain of pass-through nodes against a bare thread + queue.Queue chain.

Both chains use the same bounded queue size between hops: the graph's default (8) and a larger one (64, set
per node with ``queue: {size: 64}`` in the graph file, ``queue.Queue(64)`` in the baseline). Both run in the
same process, interleaved over several rounds (bare, graph, bare, graph, ...), because shared machines are
noisy; the ratio of the medians is reported with the spread of the per-round ratios. Goal: <= 1.5x.

    python benchmarks/overhead.py [--packets 20000] [--hops 8] [--rounds 5] [--sizes 8 64]
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

import calculators.core.pass_through  # noqa: E402,F401  (registers PassThroughCalculator whatever the install)
from pipelines import Graph  # noqa: E402
from pipelines.config import DEFAULT_QUEUE_SIZE  # noqa: E402

_END = object()


def bare_chain(packets: int, hops: int, maxsize: int) -> float:
    """The hand-written baseline: one thread per hop, bounded queue.Queue between them, a feeder thread."""
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
    for t in threads:
        t.join()
    return elapsed


def graph_text(hops: int, maxsize: int) -> str:
    """The same chain as a graph; the last hop's output is observed (collected) as the baseline's is read."""
    queue_spec = "" if maxsize == DEFAULT_QUEUE_SIZE else f", queue: {{size: {maxsize}}}"
    nodes = []
    for i in range(hops):
        src = "in" if i == 0 else f"s{i}"
        dst = "out" if i == hops - 1 else f"s{i + 1}"
        nodes.append(f"  - {{calculator: PassThroughCalculator, inputs: {{IN: {src}}}, outputs: {{OUT: {dst}}}"
                     f"{queue_spec}}}")
    return "inputs: [in]\noutputs: [out]\nnodes:\n" + "\n".join(nodes) + "\n"


def graph_chain(graph: Graph, packets: int) -> float:
    start = time.perf_counter()
    result = graph.run(inputs={"in": range(packets)}, outputs=["out"])
    elapsed = time.perf_counter() - start
    assert len(result["out"]) == packets
    return elapsed


def measure(packets: int, hops: int, rounds: int, maxsize: int) -> tuple[list[float], list[float]]:
    graph = Graph.from_string(graph_text(hops, maxsize))
    bare_chain(1000, hops, maxsize)
    graph_chain(graph, 1000)  # warm up imports and caches
    bare, ours = [], []
    for _ in range(rounds):
        bare.append(bare_chain(packets, hops, maxsize))
        ours.append(graph_chain(graph, packets))
    return bare, ours


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--hops", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[DEFAULT_QUEUE_SIZE, 64],
                        help="queue sizes to measure, the same for both chains (default: 8 64)")
    args = parser.parse_args()
    per_hop = lambda s: s / args.packets / args.hops * 1e6  # noqa: E731
    print(f"{args.hops} hops x {args.packets} packets, {args.rounds} interleaved rounds per queue size")
    for size in args.sizes:
        bare, ours = measure(args.packets, args.hops, args.rounds, size)
        b, g = statistics.median(bare), statistics.median(ours)
        ratios = [o / r for o, r in zip(ours, bare)]
        print(f"\nqueue size {size}:")
        print(f"  bare thread+queue.Queue({size}) chain: {b:.3f} s  ({per_hop(b):.2f} us per packet per hop; "
              f"rounds {per_hop(min(bare)):.2f}..{per_hop(max(bare)):.2f})")
        print(f"  framegraph pass-through chain:     {g:.3f} s  ({per_hop(g):.2f} us per packet per hop; "
              f"rounds {per_hop(min(ours)):.2f}..{per_hop(max(ours)):.2f})")
        print(f"  ratio of medians framegraph/bare: {g / b:.2f}x  (per-round ratios {min(ratios):.2f}.."
              f"{max(ratios):.2f}; goal <= 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
