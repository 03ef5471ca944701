"""The solution graphs' models alone on each CPU engine: milliseconds per call, the baseline being ONNX Runtime.

Each model the solution modules load (palm detection, hand landmarks, face landmarks, pose detection and
landmarks, selfie segmentation) through framegraph's own engines (`pipelines.engines.get_engine(name).load`,
the settings the graphs use: ONNX Runtime without spinning threads, OpenVINO's latency hint, LiteRT's XNNPACK on
the .tflite original), with 1 thread and with the engine's default, on one fixed input. Per model and engine:
the median of 7 rounds of `--runs` calls (after a warm-up), and its ratio to ONNX Runtime's in the same run.
Why it matters: the modules ask for [openvino, onnxruntime], and this is the measurement behind that order.

    python benchmarks/solution_models.py [--runs 30] [--engines onnxruntime,openvino,litert] [--models ...]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipelines.engines import EngineOptions, get_engine, installed_engines  # noqa: E402

MODELS = ["palm_detection_full", "hand_landmark_full", "face_landmark", "pose_detection", "pose_landmark_full",
          "selfie_segmentation"]
ENGINES = ["onnxruntime", "openvino", "litert"]
ROUNDS = 7


def model_file(model: str, engine: str) -> Path:
    suffix = ".tflite" if engine == "litert" else ".onnx"
    return ROOT / "assets" / "models" / f"{model}{suffix}"


def per_call_ms(engine: str, model: str, threads: int, runs: int) -> float:
    session = get_engine(engine).load(model_file(model, engine), EngineOptions(threads=threads))
    try:
        spec = session.inputs[0]
        x = np.random.default_rng(0).random([d or 1 for d in spec.shape]).astype(spec.dtype)
        for _ in range(max(5, runs // 5)):
            session.run([x])
        rounds = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            for _ in range(runs):
                session.run([x])
            rounds.append((time.perf_counter() - start) / runs * 1e3)
        return statistics.median(rounds)
    finally:
        session.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="calls per round (7 rounds)")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--models", nargs="*", default=MODELS)
    args = parser.parse_args()
    here = set(installed_engines())
    engines = [e for e in args.engines.split(",") if e in here]
    missing = [e for e in args.engines.split(",") if e not in here]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"python {platform.python_version()}" + (f"; not installed: {', '.join(missing)}" if missing else ""))
    if "onnxruntime" not in engines:
        print("ONNX Runtime (the baseline) is not installed")
        return 2
    for threads in (1, 0):
        print(f"\nthreads: {threads or 'engine default'}; ms per call (median of {ROUNDS} rounds of {args.runs}), "
              "ratio = ONNX Runtime's time / this engine's")
        print(f"{'model':<22}" + "".join(f"{e:>22}" for e in engines))
        for model in args.models:
            times = {e: per_call_ms(e, model, threads, args.runs) for e in engines}
            base = times["onnxruntime"]
            print(f"{model:<22}" + "".join(f"{t:>12.2f} ({base / t:>5.2f}x)" for t in times.values()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
