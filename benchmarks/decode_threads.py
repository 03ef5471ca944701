"""File decoding with and without the decoder's threads: VideoSourceCalculator (decode and RGB conversion, nothing
downstream) on an H.264 clip made here, with ``threads: 1`` (the baseline: no threading), ``0`` (frame and slice
threading, one thread per core) and ``2``. Prints wall time, CPU time and the speed-up over the baseline (median
of the rounds), and checks that every run gives the same frames in the same order.

    python benchmarks/decode_threads.py [--size 1280x720] [--frames 240] [--rounds 3] [--threads 1 0 2]
"""
from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines import Graph  # noqa: E402

GRAPH = """
outputs: [video]
nodes:
  - calculator: VideoSourceCalculator
    outputs: {{IMAGE: video}}
    options: {{source: "{clip}", threads: {threads}}}
"""


def make_clip(path: Path, width: int, height: int, frames: int) -> Path:
    """Moving gradients and noise blocks: enough detail that decoding costs what a real clip's does."""
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    noise = rng.integers(0, 255, (height // 16, width // 16, 3), np.uint8).repeat(16, 0).repeat(16, 1)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30, options={"preset": "veryfast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = np.stack([(xx + 4 * i) % 256, (yy + 2 * i) % 256, (xx + yy + i) % 256], -1).astype(np.uint8)
            image[: noise.shape[0], : noise.shape[1]] //= 2
            image[: noise.shape[0], : noise.shape[1]] += np.roll(noise, i * 3, axis=1) // 2
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        out.mux(stream.encode(None))
    return path


def run(clip: Path, threads: int) -> tuple[float, float, str, int]:
    wall, cpu = time.perf_counter(), time.process_time()
    handle = Graph.from_string(GRAPH.format(clip=clip, threads=threads)).start(outputs=["video"])
    digest, count = hashlib.sha1(), 0
    for packet in handle.outputs("video"):
        digest.update(packet.timestamp.to_bytes(8, "little"))
        digest.update(packet.payload.image.tobytes())
        count += 1
    handle.wait(600)
    return time.perf_counter() - wall, time.process_time() - cpu, digest.hexdigest(), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 0, 2])
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as folder:
        clip = make_clip(Path(folder) / "clip.mp4", width, height, args.frames)
        results: dict[int, list] = {t: [] for t in args.threads}
        for _ in range(args.rounds):  # interleaved, so a slow moment of the machine hits every setting alike
            for threads in args.threads:
                results[threads].append(run(clip, threads))
    digests = {r[2] for rounds in results.values() for r in rounds}
    if len(digests) != 1:
        sys.exit("threaded decoding changed the frames or their order")
    baseline = statistics.median(r[0] for r in results[args.threads[0]])
    frames = results[args.threads[0]][0][3]
    print(f"{frames} frames of {width}x{height} H.264, median of {args.rounds} rounds; frames identical in every run")
    print(f"{'threads':>8}  {'wall s':>7}  {'CPU s':>6}  {'fps':>6}  {'speed-up':>8}")
    for threads, rounds in results.items():
        wall = statistics.median(r[0] for r in rounds)
        cpu = statistics.median(r[1] for r in rounds)
        name = {0: "0 (auto)", 1: "1 (off)"}.get(threads, str(threads))
        print(f"{name:>8}  {wall:7.2f}  {cpu:6.2f}  {frames / wall:6.0f}  {baseline / wall:7.2f}x")


if __name__ == "__main__":
    main()
