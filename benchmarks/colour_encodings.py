"""face_detect with H.264 written, on the same clip written in BT.601 and in BT.709 (what HD cameras and phones
tag their video with), rounds interleaved, same run.

Frames stay in the decoder's planes for both since 2026-12-08 (pipelines/yuv.py): a BT.709 clip should cost what a
BT.601 one costs. Before, BT.709 pictures were converted to RGB by swscale in the source, drawn on in RGB and
converted back to BT.601 by the writer. Also face_blur, whose anonymizer hid faces in RGB until the same day.

    python benchmarks/colour_encodings.py [--rounds 5] [--size 1280x720] [--seconds 10]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline_stages import timed  # noqa: E402

ENCODINGS = ("bt601", "bt709")


def graph_run(graph: str, clip: Path, out: Path) -> int:
    """`run-graph GRAPH --source CLIP --output OUT --no-display`, in this process (no start-up counted)."""
    from pipelines import Graph, load_graph

    config = load_graph(ROOT / f"graphs/{graph}.yaml", overrides=[
        f"source.source={clip}", f"video_writer.path={out}", "video_writer.enabled=true", "display.enabled=false"])
    graph_ = Graph(config)
    graph_.run(timeout=900)
    return graph_.last_stats.row("video_writer").packets_in


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--graphs", default="face_detect,face_blur")
    args = parser.parse_args()
    from make_sample_clip import ensure_clip

    size = tuple(int(v) for v in args.size.lower().split("x"))
    clips = {e: ensure_clip(size=size, seconds=args.seconds, encoding=e) for e in ENCODINGS}
    print(f"{args.size}, {args.seconds:g} s clips, median of {args.rounds} interleaved rounds")
    with tempfile.TemporaryDirectory() as tmp:
        for graph in args.graphs.split(","):
            graph_run(graph, clips["bt601"], Path(tmp) / "warm.mp4")  # imports, models, page cache
            fps: dict[str, list[float]] = {e: [] for e in ENCODINGS}
            for _ in range(args.rounds):
                for encoding, clip in clips.items():
                    wall, _, frames = timed(graph_run, graph, clip, Path(tmp) / f"{encoding}.mp4")
                    fps[encoding].append(frames / wall)
            medians = {e: statistics.median(v) for e, v in fps.items()}
            ratios = [b / a for a, b in zip(fps["bt601"], fps["bt709"])]
            print(f"{graph}: BT.601 {medians['bt601']:.1f} fps, BT.709 {medians['bt709']:.1f} fps: "
                  f"{medians['bt709'] / medians['bt601']:.2f}x (per round {', '.join(f'{r:.2f}' for r in ratios)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
