#!/usr/bin/env python3
"""Regenerate the BlazeFace face detection assets in assets/models/.

Environment: the "mpenv" virtualenv (Python 3.11) with
    mediapipe==0.10.21  "numpy<2"  tflite==2.18.0  onnx==1.22.0  (onnxruntime optional)
created e.g. with
    python3.11 -m venv /tmp/mpenv
    /tmp/mpenv/bin/pip install mediapipe==0.10.21 "numpy<2" tflite onnx onnxruntime

Run from the repository root:
    /tmp/mpenv/bin/python scripts/convert_face_models.py

Then check the conversion against LiteRT (different venv, see that script):
    /tmp/devenv/bin/python scripts/check_model_parity.py

What it writes (all under assets/models/):
  * face_detection_short_range.tflite, face_detection_full_range_sparse.tflite:
    byte-for-byte copies from the mediapipe wheel, sha256-pinned below so a
    different wheel cannot silently change the assets.
  * LICENSE: the wheel's Apache-2.0 licence text.
  * face_detection_graph_options.json: the calculator options of MediaPipe's
    FaceDetection{ShortRange,FullRange}Cpu graphs.  The .binarypb files in the
    wheel only reference registered subgraphs, so they are expanded with
    mediapipe's ValidatedGraphConfig (the same expansion the C++ runtime does)
    and the options are read from the expanded nodes.
  * face_detection_short_range.onnx, face_detection_full_range.onnx.
  * face_detection_short_range_batch.onnx, face_detection_full_range_batch.onnx:
    the same with a dynamic first dimension (scripts/onnx_batch_dynamic.py),
    which the face detection modules use to batch the frames of several
    streams into one call.

The ONNX conversion is scripts/tflite_to_onnx.py (why a purpose-built
converter: see there).  It keeps the tflite interface exactly: input "input"
NHWC float32 [1,H,W,3] (RGB in [-1,1]), outputs "regressors" [1,N,16] then
"classificators" [1,N,1].  The full-range model's sparse fp16 weights (DENSIFY)
are folded into fp32 initializers.

The output is deterministic: running the script twice gives identical bytes.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.metadata
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import tflite

from onnx_batch_dynamic import make_batch_dynamic
from tflite_to_onnx import ONNX_OPSET, TfliteToOnnx

MEDIAPIPE_VERSION = "0.10.21"
WHEEL_MODULE_DIR = "mediapipe/modules/face_detection"

# (tflite in the wheel, graph in the wheel, ONNX file we write, JSON key)
MODELS = [
    ("face_detection_short_range.tflite", "face_detection_short_range_cpu.binarypb",
     "face_detection_short_range.onnx", "short_range"),
    ("face_detection_full_range_sparse.tflite", "face_detection_full_range_cpu.binarypb",
     "face_detection_full_range.onnx", "full_range"),
]

# Pinned so that a different mediapipe wheel cannot silently change the assets.
EXPECTED_SHA256 = {
    "face_detection_short_range.tflite":
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    "face_detection_full_range_sparse.tflite":
        "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
    "face_detection_short_range_cpu.binarypb":
        "84e65794d4e1d1c6d56896f4dfaab97bc769033205475c1bb9967a22f0da469c",
    "face_detection_full_range_cpu.binarypb":
        "00f072e71a9752536aa4b09216c6bf8d9cc7493222a8d3a472e563eb0e23163b",
}

REPO_ROOT = Path(__file__).resolve().parent.parent


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wheel_record_sha256(dist: importlib.metadata.Distribution, relpath: str) -> str | None:
    """sha256 (hex) that the wheel's RECORD lists for relpath, if any."""
    for f in dist.files or []:
        if str(f) == relpath and f.hash is not None and f.hash.mode == "sha256":
            raw = base64.urlsafe_b64decode(f.hash.value + "=" * (-len(f.hash.value) % 4))
            return raw.hex()
    return None


# --------------------------------------------------------------------------
# 1. copy the wheel files
# --------------------------------------------------------------------------

def copy_wheel_files(out_dir: Path) -> dict[str, str]:
    dist = importlib.metadata.distribution("mediapipe")
    if dist.version != MEDIAPIPE_VERSION:
        sys.exit(f"need mediapipe=={MEDIAPIPE_VERSION}, found {dist.version}")
    hashes = {}
    for name in [m[0] for m in MODELS] + [m[1] for m in MODELS]:
        rel = f"{WHEEL_MODULE_DIR}/{name}"
        src = Path(dist.locate_file(rel))
        digest = sha256_of(src)
        # Check both the wheel's own RECORD (file not modified since install)
        # and our pin (same wheel as the one the model cards describe).
        if wheel_record_sha256(dist, rel) not in (None, digest):
            sys.exit(f"{src} does not match the wheel RECORD")
        if EXPECTED_SHA256[name] != digest:
            sys.exit(f"{src}: sha256 {digest} != pinned {EXPECTED_SHA256[name]}")
        hashes[name] = digest
        if name.endswith(".tflite"):
            shutil.copyfile(src, out_dir / name)
            print(f"copied {rel} -> {out_dir / name}")
    lic = next((Path(dist.locate_file(f)) for f in dist.files or []
                if f.name == "LICENSE" and ".dist-info" in str(f)), None)
    if lic is None or "Apache License" not in lic.read_text():
        sys.exit("mediapipe dist-info LICENSE (Apache-2.0) not found")
    shutil.copyfile(lic, out_dir / "LICENSE")
    print(f"copied {lic} -> {out_dir / 'LICENSE'}")
    return hashes


# --------------------------------------------------------------------------
# 2. decode the MediaPipe graph options
# --------------------------------------------------------------------------

def proto_to_dict(msg) -> dict:
    """Every field with its effective value (proto2 defaults included).

    MessageToDict drops proto2 fields that were left at their default, but the
    detection calculators need the effective value of every option (e.g.
    apply_exponential_on_box_size=false, max_results=-1), so list them all.
    Unset sub-messages and unselected oneof members are left out.
    """
    from google.protobuf.descriptor import FieldDescriptor as FD

    out = {}
    for field in msg.DESCRIPTOR.fields:
        repeated = field.label == FD.LABEL_REPEATED
        if not repeated and (field.type == FD.TYPE_MESSAGE or field.containing_oneof is not None):
            if not msg.HasField(field.name):
                continue
        value = getattr(msg, field.name)
        values = list(value) if repeated else [value]
        conv = []
        for v in values:
            if field.type == FD.TYPE_MESSAGE:
                v = proto_to_dict(v)
            elif field.type == FD.TYPE_ENUM:
                v = field.enum_type.values_by_number[v].name
            elif field.type == FD.TYPE_FLOAT:
                # float32 fields: print 0.3, not 0.30000001192092896
                v = float(str(np.float32(v)))
            conv.append(v)
        out[field.name] = conv if repeated else conv[0]
    return out


def count_ssd_anchors(opts: dict) -> int:
    """Anchor count produced by MediaPipe's SsdAnchorsCalculator for these options.

    Consecutive layers with the same stride share one feature map, and every
    layer contributes len(aspect_ratios) anchors per cell plus one more when
    interpolated_scale_aspect_ratio > 0.
    """
    assert not opts["feature_map_height"] and not opts["reduce_boxes_in_lowest_layer"]
    assert not opts["multiscale_anchor_generation"]
    strides, total, layer = opts["strides"], 0, 0
    while layer < opts["num_layers"]:
        per_cell, last = 0, layer
        while last < len(strides) and strides[last] == strides[layer]:
            per_cell += len(opts["aspect_ratios"])
            per_cell += 1 if opts["interpolated_scale_aspect_ratio"] > 0 else 0
            last += 1
        fh = -(-opts["input_size_height"] // strides[layer])
        fw = -(-opts["input_size_width"] // strides[layer])
        total += fh * fw * per_cell
        layer = last
    return total


def decode_graph_options(binarypb: Path) -> dict:
    # Imported here so the ONNX conversion itself does not depend on mediapipe.
    from mediapipe.calculators.tensor import image_to_tensor_calculator_pb2  # noqa: F401
    from mediapipe.calculators.tensor import inference_calculator_pb2  # noqa: F401
    from mediapipe.calculators.tensor import tensors_to_detections_calculator_pb2  # noqa: F401
    from mediapipe.calculators.tflite import ssd_anchors_calculator_pb2  # noqa: F401
    from mediapipe.calculators.util import non_max_suppression_calculator_pb2 as nms_pb2
    from mediapipe.framework import calculator_pb2
    from mediapipe.modules.face_detection import face_detection_pb2  # noqa: F401
    from mediapipe.python._framework_bindings import validated_graph_config
    from google.protobuf import symbol_database

    top = calculator_pb2.CalculatorGraphConfig.FromString(binarypb.read_bytes())
    vgc = validated_graph_config.ValidatedGraphConfig()
    vgc.initialize(binary_graph_path=str(binarypb))
    expanded = calculator_pb2.CalculatorGraphConfig.FromString(vgc.binary_config)

    wanted = {
        "ImageToTensorCalculator": "image_to_tensor",
        "SsdAnchorsCalculator": "ssd_anchors",
        "InferenceCalculatorCpu": "inference",
        "TensorsToDetectionsCalculator": "tensors_to_detections",
        "NonMaxSuppressionCalculator": "non_max_suppression",
    }
    db = symbol_database.Default()
    found = {}
    for node in expanded.node:
        key = wanted.get(node.calculator)
        if key is None:
            continue
        if node.calculator == "NonMaxSuppressionCalculator":
            # this one still uses the legacy proto2-extension `options` field
            msg = node.options.Extensions[nms_pb2.NonMaxSuppressionCalculatorOptions.ext]
        else:
            (any_msg,) = node.node_options
            msg = db.GetSymbol(any_msg.TypeName())()
            any_msg.Unpack(msg)
        assert key not in found, f"two {node.calculator} nodes"
        found[key] = proto_to_dict(msg)
    assert set(found) == set(wanted.values()), found.keys()
    return {"graph_type": top.type, "expanded_calculators": [n.calculator for n in expanded.node],
            **found}


def graph_options(hashes: dict[str, str]) -> dict:
    dist = importlib.metadata.distribution("mediapipe")
    result = {}
    for tfl, pb, onnx_name, key in MODELS:
        d = decode_graph_options(Path(dist.locate_file(f"{WHEEL_MODULE_DIR}/{pb}")))
        inference = d.pop("inference")
        entry = {
            "source": {
                "mediapipe_version": MEDIAPIPE_VERSION,
                "graph": f"{WHEEL_MODULE_DIR}/{pb}",
                "graph_sha256": hashes[pb],
                "graph_type": d.pop("graph_type"),
                "expanded_calculators": d.pop("expanded_calculators"),
                "model_path": inference["model_path"],
                "tflite": tfl,
                "tflite_sha256": hashes[tfl],
                "onnx": onnx_name,
            },
            **d,
            "num_anchors": count_ssd_anchors(d["ssd_anchors"]),
        }
        if entry["num_anchors"] != d["tensors_to_detections"]["num_boxes"]:
            sys.exit(f"{key}: anchors {entry['num_anchors']} != num_boxes")
        result[key] = entry
    return result


# --------------------------------------------------------------------------
# 3. tflite -> ONNX (the converter itself is scripts/tflite_to_onnx.py)
# --------------------------------------------------------------------------

def output_names(tflite_path: Path) -> list[str]:
    """'regressors'/'classificators' by shape: the full-range tflite calls them
    Identity/Identity_1, the short-range one already uses these names."""
    m = tflite.Model.GetRootAsModel(tflite_path.read_bytes(), 0)
    g = m.Subgraphs(0)
    shapes = [list(g.Tensors(i).ShapeAsNumpy()) for i in g.OutputsAsNumpy()]
    if [s[-1] for s in shapes] != [16, 1] or shapes[0][1] != shapes[1][1]:
        raise ValueError(f"unexpected output shapes {shapes}")
    return ["regressors", "classificators"]


def convert_model(src: Path, key: str, sha256: str) -> onnx.ModelProto:
    """The ONNX model for one face detector tflite (sha256: the tflite's, recorded in the metadata)."""
    tfl = src.name
    conv = TfliteToOnnx(src, output_names(src))
    return conv.convert(
        doc=(f"BlazeFace {key} face detector converted from MediaPipe {MEDIAPIPE_VERSION} "
             f"{WHEEL_MODULE_DIR}/{tfl} by scripts/convert_face_models.py. Input NHWC float32 "
             "RGB in [-1,1]; outputs regressors [1,N,16], classificators [1,N,1] (logits)."),
        metadata={"source": f"mediapipe=={MEDIAPIPE_VERSION}:{WHEEL_MODULE_DIR}/{tfl}",
                  "source_sha256": sha256, "input_layout": "NHWC",
                  "input_range": "[-1,1] RGB", "license": "Apache-2.0"},
        graph_name="blazeface", producer="framegraph scripts/convert_face_models.py")


def smoke_test(onnx_path: Path) -> None:
    try:
        import onnxruntime as ort
    except ImportError:
        print("  (onnxruntime not installed: skipped load test)")
        return
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    outs = sess.run(None, {inp.name: np.zeros(inp.shape, np.float32)})
    print(f"  onnxruntime: {inp.name}{inp.shape} -> "
          + ", ".join(f"{o.name}{list(v.shape)}" for o, v in zip(sess.get_outputs(), outs, strict=True)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=REPO_ROOT / "assets" / "models")
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)

    hashes = copy_wheel_files(args.out_dir)

    options = graph_options(hashes)
    json_path = args.out_dir / "face_detection_graph_options.json"
    json_path.write_text(json.dumps(options, indent=2) + "\n")
    print(f"wrote {json_path}")

    for tfl, _, onnx_name, key in MODELS:
        model = convert_model(args.out_dir / tfl, key, hashes[tfl])
        dst = args.out_dir / onnx_name
        onnx.save(model, dst)
        print(f"wrote {dst} (opset {ONNX_OPSET}, {len(model.graph.node)} nodes) sha256 {sha256_of(dst)}")
        smoke_test(dst)
        # The same network with a dynamic batch, for several streams sharing one session.
        batched = dst.with_name(dst.stem + "_batch.onnx")
        onnx.save(make_batch_dynamic(model), batched)
        print(f"wrote {batched} (batch-dynamic) sha256 {sha256_of(batched)}")


if __name__ == "__main__":
    main()
