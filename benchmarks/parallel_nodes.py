"""Parallel calls of one node: a calculator that sleeps (releasing the GIL, as a native library or a remote call
does) for a fixed time per packet, run with ``max_in_flight: N`` for N = 1, 2, 4, 8. The ideal speed-up is N
(the calls overlap entirely); the figure printed is the measured one (median of the rounds), with the outputs
checked to be in timestamp order.

    python benchmarks/parallel_nodes.py [--packets 200] [--sleep-ms 20] [--inflight 1 2 4 8] [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines import Calculator, Graph, Input, Output, Packet, register_calculator  # noqa: E402


class SleepyCalculator(Calculator):
    """Sleeps `seconds`, then passes IN on. Safe to call concurrently: it keeps no state.

    Ports: IN -> OUT
    """

    IN = Input[object]("IN")
    OUT = Output[object]("OUT")
    max_in_flight = 64

    @dataclass(frozen=True)
    class Options:
        seconds: float = 0.02

    def process(self, ctx):
        time.sleep(self.options.seconds)
        ctx.send(self.OUT, ctx.get(self.IN))


register_calculator(SleepyCalculator, replace=True)


def run(packets: int, seconds: float, n: int) -> float:
    g = Graph.from_string(f"""
        inputs: [frames]
        outputs: [slept]
        nodes:
          # the node under test: up to {n} calls at once, on an executor of its own with {n} threads
          - {{calculator: SleepyCalculator, name: sleepy, inputs: {{IN: frames}}, outputs: {{OUT: slept}},
              max_in_flight: {n}, options: {{seconds: {seconds}}}}}
    """, "parallel_nodes.yaml")
    start = time.perf_counter()
    out = g.run(inputs={"frames": [Packet(t, t) for t in range(packets)]}, outputs=["slept"], timeout=600)
    elapsed = time.perf_counter() - start
    if [p.timestamp for p in out["slept"]] != list(range(packets)):
        raise SystemExit(f"max_in_flight {n}: outputs out of timestamp order")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packets", type=int, default=200)
    ap.add_argument("--sleep-ms", type=float, default=20.0)
    ap.add_argument("--inflight", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    seconds = args.sleep_ms / 1000
    print(f"{args.packets} packets, {args.sleep_ms:g} ms asleep per call, {args.rounds} interleaved rounds")
    times: dict[int, list[float]] = {n: [] for n in args.inflight}
    for _ in range(args.rounds):
        for n in args.inflight:
            times[n].append(run(args.packets, seconds, n))
    ideal = args.packets * seconds
    base = statistics.median(times[args.inflight[0]])
    for n in args.inflight:
        t = statistics.median(times[n])
        print(f"  max_in_flight {n}: {t:.3f} s  ({t / args.packets * 1000:.2f} ms per packet; ideal "
              f"{ideal / n:.3f} s)  speed-up {base / t:.2f}x over max_in_flight {args.inflight[0]} "
              f"(rounds {min(times[n]):.3f}..{max(times[n]):.3f} s)")


if __name__ == "__main__":
    main()
