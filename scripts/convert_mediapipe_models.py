#!/usr/bin/env python3
"""Copy MediaPipe's hand, pose, face mesh, iris and selfie models into assets/models/ and convert them to ONNX.

Environment: any Python >= 3.10 with numpy, onnx and tflite (the flatbuffer
reader, `pip install tflite onnx`); mediapipe itself is not needed, the wheel
is read as a zip (see scripts/mediapipe_wheel.py for how to download it).

Run from the repository root:
    python scripts/convert_mediapipe_models.py [--wheel /tmp/mpwheel/mediapipe-0.10.21-....whl]
then
    python scripts/check_mediapipe_parity.py        # ONNX vs LiteRT on real frames
    /tmp/mpenv/bin/python scripts/decode_mediapipe_graphs.py
    python scripts/write_mediapipe_model_cards.py

What it writes (all under assets/models/):
  * <model>.tflite (and handedness.txt): byte-for-byte copies from the wheel,
    checked against its RECORD and against the sha256 pinned in mediapipe_wheel.py.
  * <model>.onnx: converted by scripts/tflite_to_onnx.py, input "input" NHWC
    float32, outputs in the tflite's order and layout under the names below.
  * mediapipe_models.json: per model the files' sha256 and size, the input and
    output names and shapes, and the operators before and after conversion.

The output is deterministic: a rerun gives identical bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mediapipe_wheel import DEFAULT_WHEEL, MEDIAPIPE_VERSION, MediapipeWheel, sha256_hex  # noqa: E402
from tflite_to_onnx import ONNX_OPSET, TfliteToOnnx, op_counts  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
MODULES = "mediapipe/modules"

# name -> (wheel module dir, ONNX output names in the tflite's output order,
#          input value range MediaPipe's ImageToTensorCalculator produces)
MODELS = {
    "palm_detection_full": ("palm_detection", ["regressors", "classificators"], [0.0, 1.0]),
    "palm_detection_lite": ("palm_detection", ["regressors", "classificators"], [0.0, 1.0]),
    "hand_landmark_full": ("hand_landmark",
                           ["landmarks", "hand_flag", "handedness", "world_landmarks"], [0.0, 1.0]),
    "hand_landmark_lite": ("hand_landmark",
                           ["landmarks", "hand_flag", "handedness", "world_landmarks"], [0.0, 1.0]),
    "pose_detection": ("pose_detection", ["regressors", "classificators"], [-1.0, 1.0]),
    "pose_landmark_full": ("pose_landmark", ["landmarks", "pose_flag", "segmentation", "heatmap",
                                             "world_landmarks"], [0.0, 1.0]),
    "face_landmark": ("face_landmark", ["landmarks", "face_flag"], [0.0, 1.0]),
    "iris_landmark": ("iris_landmark", ["eye_contours_and_brows", "iris"], [0.0, 1.0]),
    "selfie_segmentation": ("selfie_segmentation", ["segmentation"], [0.0, 1.0]),
    "selfie_segmentation_landscape": ("selfie_segmentation", ["segmentation"], [0.0, 1.0]),
}
EXTRA_FILES = ["hand_landmark/handedness.txt"]


def tflite_interface(path: Path) -> tuple[dict, list[dict]]:
    import tflite

    g = tflite.Model.GetRootAsModel(path.read_bytes(), 0).Subgraphs(0)

    def info(i):
        t = g.Tensors(i)
        return {"tflite_name": t.Name().decode(), "shape": [int(s) for s in t.ShapeAsNumpy()]}
    (inp,) = g.InputsAsNumpy()
    return info(inp), [info(i) for i in g.OutputsAsNumpy()]


def convert(name: str, src: Path, out_names: list[str], sha: str, value_range) -> onnx.ModelProto:
    rel = f"{MODULES}/{MODELS[name][0]}/{name}.tflite"
    conv = TfliteToOnnx(src, out_names)
    return conv.convert(
        doc=(f"MediaPipe {MEDIAPIPE_VERSION} {rel} converted by scripts/convert_mediapipe_models.py. "
             f"Input NHWC float32 RGB in {value_range}; outputs {', '.join(out_names)} in the "
             "tflite's order and layout. See assets/models/" + name + ".md."),
        metadata={"source": f"mediapipe=={MEDIAPIPE_VERSION}:{rel}", "source_sha256": sha,
                  "input_layout": "NHWC", "input_range": f"{value_range} RGB",
                  "license": "Apache-2.0"},
        graph_name=name, producer="framegraph scripts/convert_mediapipe_models.py")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheel", type=Path, default=DEFAULT_WHEEL)
    ap.add_argument("--out-dir", type=Path, default=REPO_ROOT / "assets" / "models")
    ap.add_argument("--only", nargs="*", help="convert only these models")
    args = ap.parse_args()
    wheel = MediapipeWheel(args.wheel)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out_dir / "mediapipe_models.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.setdefault("source", {
        "mediapipe_version": MEDIAPIPE_VERSION, "wheel": wheel.path.name,
        "wheel_sha256": sha256_hex(wheel.path.read_bytes()), "license": "Apache-2.0"})
    models = manifest.setdefault("models", {})
    for rel in EXTRA_FILES:
        sha = wheel.extract(f"{MODULES}/{rel}", args.out_dir / Path(rel).name)
        manifest.setdefault("files", {})[Path(rel).name] = {"source": f"{MODULES}/{rel}", "sha256": sha}
        print(f"copied {rel}")

    for name, (module, out_names, value_range) in MODELS.items():
        if args.only and name not in args.only:
            continue
        rel = f"{MODULES}/{module}/{name}.tflite"
        tfl = args.out_dir / f"{name}.tflite"
        sha = wheel.extract(rel, tfl)
        inp, outs = tflite_interface(tfl)
        model = convert(name, tfl, out_names, sha, value_range)
        dst = args.out_dir / f"{name}.onnx"
        onnx.save(model, dst)
        onnx_sha = sha256_hex(dst.read_bytes())
        models[name] = {
            "source": rel,
            "tflite": {"file": tfl.name, "bytes": tfl.stat().st_size, "sha256": sha,
                       "ops": op_counts(tfl)},
            "onnx": {"file": dst.name, "bytes": dst.stat().st_size, "sha256": onnx_sha,
                     "opset": ONNX_OPSET,
                     "nodes": dict(Counter(n.op_type for n in model.graph.node).most_common())},
            "input": {"name": "input", **inp, "layout": "NHWC", "dtype": "float32",
                      "range": value_range},
            "outputs": [{"name": n, **o, "dtype": "float32"} for n, o in zip(out_names, outs, strict=True)],
        }
        print(f"{name}: {tfl.stat().st_size} B tflite -> {dst.stat().st_size} B onnx "
              f"({len(model.graph.node)} nodes) sha256 {onnx_sha}")
    manifest["models"] = dict(sorted(models.items()))
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {manifest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
