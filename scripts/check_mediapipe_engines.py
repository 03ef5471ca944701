#!/usr/bin/env python3
"""Run every MediaPipe model of assets/models/ on every installed framegraph engine and compare with ONNX Runtime.

Environment: /work/venv with framegraph installed (`pip install -e ".[dev]"`: ONNX Runtime, OpenVINO,
LiteRT, MNN, ncnn + pnnx, TVM); an engine that is not installed is reported and skipped.

Run from the repository root:
    python scripts/check_mediapipe_engines.py [--engines litert,openvino,mnn,ncnn,tvm] [--models NAME ...]

Each engine loads the model the way a graph would (pipelines.engines: ncnn, MNN and TVM convert the ONNX file at
first use, LiteRT runs the original .tflite). Input: scikit-image's astronaut, letterboxed and as its centre
square. The bound is twice the model's LiteRT tolerance (scripts/check_mediapipe_parity.py): two engines each
within it of LiteRT are within twice it of each other. Exits 1 if an engine fails to load or run a model, or
exceeds the bound.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "scripts"))
sys.path.insert(0, str(REPO_ROOT))
from check_mediapipe_parity import TOLERANCES, to_tensor  # noqa: E402
from pipelines.engines import EngineOptions, get_engine  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engines", default="litert,openvino,mnn,ncnn,tvm")
    ap.add_argument("--models", nargs="*")
    args = ap.parse_args()
    models_dir = REPO_ROOT / "assets" / "models"
    manifest = json.loads((models_dir / "mediapipe_models.json").read_text())["models"]
    path = importlib.metadata.distribution("scikit-image").locate_file("skimage/data/astronaut.png")
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    reference = get_engine("onnxruntime")
    failed = []
    for name in args.models or list(manifest):
        entry = manifest[name]
        names = [o["name"] for o in entry["outputs"]]
        _, h, w, _ = entry["input"]["shape"]
        inputs = [to_tensor(rgb, h, w, entry["input"]["range"], lb) for lb in (True, False)]
        ref_session = reference.load(models_dir / f"{name}.onnx", EngineOptions())
        expected = [ref_session.run([x]) for x in inputs]
        for engine_name in args.engines.split(","):
            engine = get_engine(engine_name)
            if not engine.is_installed():
                print(f"{name:30s} {engine_name:9s} not installed")
                continue
            model = models_dir / (f"{name}.tflite" if engine_name == "litert" else f"{name}.onnx")
            start = time.perf_counter()
            try:
                session = engine.load(model, EngineOptions())
                worst = dict.fromkeys(names, 0.0)
                for x, want in zip(inputs, expected, strict=True):
                    for out, got, ref in zip(names, session.run([x]), want, strict=True):
                        worst[out] = max(worst[out], float(np.abs(np.asarray(got).reshape(ref.shape) - ref).max()))
            except Exception as exc:  # report every engine, then fail
                print(f"{name:30s} {engine_name:9s} ERROR {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                failed.append(f"{name}/{engine_name}")
                continue
            over = [o for o, d in worst.items() if d > 2 * TOLERANCES[name][o]]
            failed += [f"{name}/{engine_name}/{o}" for o in over]
            print(f"{name:30s} {engine_name:9s} {time.perf_counter() - start:5.1f}s load+run  max|diff| vs ORT: "
                  + ", ".join(f"{o} {d:.1e}{' FAIL' if o in over else ''}" for o, d in worst.items()))
    if failed:
        print(f"\nFAIL: {', '.join(failed)}")
        return 1
    print("\nOK: every installed engine runs every model within twice its LiteRT tolerance of ONNX Runtime")
    return 0


if __name__ == "__main__":
    sys.exit(main())
