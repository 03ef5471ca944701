"""Detection on every 3rd frame with a tracker in between: the speed gain and the accuracy cost.

graphs/face_track.yaml (detector on every frame) against graphs/face_track_fast.yaml (every 3rd frame), on
the generated crossing clip (three faces that move, cross and hide one another; ground truth known),
writing only the tracked detections (no video encode, so the detector's share of the time shows). Rounds
alternate; times are medians; accuracy is motmetrics' MOTA / IDF1 / id switches against the ground truth.

    python benchmarks/detect_interval.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "tests")]

from make_crossing_clip import FRAMES, make  # noqa: E402
from tracking_eval import read_jsonl_tracks, read_mot, score  # noqa: E402

from pipelines import Graph, load_graph  # noqa: E402


def run(graph: str, clip: Path, jsonl: Path) -> float:
    config = load_graph(ROOT / "graphs" / graph, overrides=[
        f"source.source={clip}", f"detections_writer.path={jsonl}", "detections_writer.enabled=true",
        "display.enabled=false"])
    g = Graph(config)
    start = time.perf_counter()
    g.run(timeout=600)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    graphs = {"every frame": "face_track.yaml", "every 3rd frame": "face_track_fast.yaml"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip, gt = make(tmp)
        times: dict[str, list[float]] = {name: [] for name in graphs}
        for name, graph in graphs.items():
            run(graph, clip, tmp / "warm.jsonl")
        for _ in range(args.rounds):
            for name, graph in graphs.items():
                times[name].append(run(graph, clip, tmp / f"{graph}.jsonl"))
        truth = read_mot(gt)
        print(f"\ncrossing clip: 640x360, {FRAMES} frames, 3 faces; median of {args.rounds} rounds")
        print(f"{'detection':<17}{'time':>9}{'fps':>9}{'MOTA':>8}{'IDF1':>8}{'IDsw':>6}{'FP':>5}{'FN':>5}")
        base = statistics.median(times["every frame"])
        for name, graph in graphs.items():
            seconds = statistics.median(times[name])
            m = score(truth, read_jsonl_tracks(tmp / f"{graph}.jsonl"), FRAMES)
            print(f"{name:<17}{seconds:8.3f}s{FRAMES / seconds:9.1f}{m['mota']:8.3f}{m['idf1']:8.3f}"
                  f"{m['idsw']:6d}{m['fp']:5d}{m['fn']:5d}")
        print(f"speed gain: {base / statistics.median(times['every 3rd frame']):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
