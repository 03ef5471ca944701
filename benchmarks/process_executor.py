"""The process executor against threads, on Python work that holds the GIL: a calculator that spins a pure-Python
loop (`--work-ms` per packet) on a 320x240 frame it sends back, run on one thread, on two threads (the GIL lets
one run at a time: about 1x), and on two worker processes (``executors: {cpu: {processes: 2}}``,
``max_in_flight: 2``; the frames cross through shared memory). Goal on 2 cores: 2 processes >= 1.7x one thread.

Throughput is timed from the moment the graph is open (workers booted, calculators opened) to its last output;
the start-up (``Graph.start``: spawning and booting the workers) is printed beside it. Median of interleaved rounds.

    python benchmarks/process_executor.py [--packets 300] [--work-ms 10] [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from pipelines import Calculator, Graph, Input, Output, register_calculator  # noqa: E402
from pipelines.types import Frame  # noqa: E402


class SpinCalculator(Calculator):
    """Spins `iterations` of a pure-Python loop (the GIL held throughout), then sends IMAGE on. Stateless.

    Ports: IMAGE (Frame) -> IMAGE (Frame)
    """

    IMAGE_IN = Input[Frame]("IMAGE")
    IMAGE_OUT = Output[Frame]("IMAGE")
    max_in_flight = 8

    @dataclass(frozen=True)
    class Options:
        iterations: int = 100_000

    def process(self, ctx):
        ctx.send(self.IMAGE_OUT, ctx.get(self.IMAGE_IN))
        spin(self.options.iterations)


def spin(iterations: int) -> int:
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return total


register_calculator(SpinCalculator, replace=True)

SETUPS = {
    "1 thread": ("{threads: 1}", 1),
    "2 threads": ("{threads: 2}", 2),
    "2 processes": ("{processes: 2}", 2),
}


def iterations_for(ms: float) -> int:
    n = 200_000
    start = time.perf_counter()
    spin(n)
    return max(1, int(n * ms / 1000 / (time.perf_counter() - start)))


def run(setup: str, packets: int, iterations: int) -> tuple[float, float]:
    """(start-up seconds, seconds from open to the last output)."""
    executor, in_flight = SETUPS[setup]
    g = Graph.from_string(f"""
        inputs: [frames]
        outputs: [spun]
        executors: {{cpu: {executor}}}
        nodes:
          # the node under test: pure-Python work holding the GIL, {in_flight} call(s) at once
          - {{calculator: SpinCalculator, name: spin, inputs: {{IMAGE: frames}}, outputs: {{IMAGE: spun}},
              executor: cpu, max_in_flight: {in_flight}, options: {{iterations: {iterations}}}}}
    """, "process_executor.yaml")
    image = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    seen: list[int] = []
    last = [0.0]

    def on_packet(packet) -> None:
        if packet is not None:
            seen.append(packet.payload.index)
            last[0] = time.perf_counter()

    start = time.perf_counter()
    handle = g.start()
    opened = time.perf_counter()
    handle.observe("spun", on_packet)
    for t in range(packets):
        handle.send("frames", Frame(image, index=t), t)
    handle.close_inputs()
    handle.wait(600)  # and the workers' shutdown, which is not part of the throughput
    if seen != list(range(packets)):
        raise SystemExit(f"{setup}: outputs missing or out of timestamp order")
    return opened - start, last[0] - opened


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packets", type=int, default=300)
    ap.add_argument("--work-ms", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    iterations = iterations_for(args.work_ms)
    print(f"{args.packets} packets of 320x240, pure-Python work of {iterations} iterations each (calibrated to "
          f"{args.work_ms:g} ms just now), {args.rounds} interleaved rounds")
    times: dict[str, list[tuple[float, float]]] = {s: [] for s in SETUPS}
    for _ in range(args.rounds):
        for setup in SETUPS:
            times[setup].append(run(setup, args.packets, iterations))
    base = statistics.median(t for _, t in times["1 thread"])
    for setup, rounds in times.items():
        t = statistics.median(r for _, r in rounds)
        ratios = [base / r for _, r in rounds]
        print(f"  {setup:<12} {t:.3f} s ({t / args.packets * 1000:.2f} ms per packet)  {base / t:.2f}x one thread "
              f"(rounds {min(ratios):.2f}..{max(ratios):.2f}x)  start-up {statistics.median(s for s, _ in rounds):.3f} s")
    ratio = base / statistics.median(r for _, r in times["2 processes"])
    print(f"2 processes / 1 thread: {ratio:.2f}x (goal >= 1.7x on 2 cores)")


if __name__ == "__main__":
    # Workers import a node's class by module and name: run from the importable module, not from __main__.
    from benchmarks.process_executor import main as benchmark

    benchmark()
