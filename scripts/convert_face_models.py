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

Why a purpose-built tflite->ONNX converter rather than tflite2onnx: the
full-range model stores its 1x1 conv weights as sparse fp16 tensors expanded at
runtime by DENSIFY, and also uses DEPTH_TO_SPACE; tflite2onnx knows neither,
and it also turns the graph input into NCHW.  Both models only use a dozen
simple builtin ops, so translating them directly is short and lets us keep the
tflite interface exactly: input "input" NHWC float32 [1,H,W,3] (RGB in [-1,1]),
outputs "regressors" [1,N,16] then "classificators" [1,N,1].  Internally the
graph runs NCHW (the only layout ONNX Conv/MaxPool/Resize accept); one
Transpose after the input and one before each Reshape convert back and forth.
Constant subgraphs (DENSIFY, fp16 DEQUANTIZE) are folded into fp32
initializers, which is also what LiteRT does at prepare time.

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
from onnx import TensorProto, helper, numpy_helper

MEDIAPIPE_VERSION = "0.10.21"
WHEEL_MODULE_DIR = "mediapipe/modules/face_detection"
ONNX_OPSET = 13  # Resize with empty roi/scales inputs; loads in ORT and OpenVINO
ONNX_IR_VERSION = 8  # opset 13 needs IR >= 7; kept low for older runtimes

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
# 3. tflite -> ONNX
# --------------------------------------------------------------------------

OPNAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
NP_DTYPES = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16,
             tflite.TensorType.INT32: np.int32, tflite.TensorType.INT64: np.int64,
             tflite.TensorType.UINT8: np.uint8, tflite.TensorType.INT8: np.int8}
OPTION_CLASSES = {
    "CONV_2D": tflite.Conv2DOptions, "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
    "ADD": tflite.AddOptions, "MAX_POOL_2D": tflite.Pool2DOptions,
    "CONCATENATION": tflite.ConcatenationOptions, "RESIZE_BILINEAR": tflite.ResizeBilinearOptions,
    "DEPTH_TO_SPACE": tflite.DepthToSpaceOptions,
}
NHWC_TO_NCHW = [0, 3, 1, 2]
NCHW_TO_NHWC = [0, 2, 3, 1]


def read_index_vector(table, kind) -> np.ndarray:
    cls = {tflite.SparseIndexVector.Int32Vector: tflite.Int32Vector,
           tflite.SparseIndexVector.Uint16Vector: tflite.Uint16Vector,
           tflite.SparseIndexVector.Uint8Vector: tflite.Uint8Vector}[kind]
    vec = cls()
    vec.Init(table.Bytes, table.Pos)
    return vec.ValuesAsNumpy().astype(np.int64)


def densify(tensor, values: np.ndarray) -> np.ndarray:
    """Expand a TFLite sparse tensor (tflite SparsityParameters) to dense.

    Follows tflite's FormatConverter::SparseToDense: walk the levels in
    traversal order (DENSE levels enumerate 0..dense_size-1, SPARSE_CSR levels
    enumerate array_indices[segments[p]:segments[p+1]]); the stored values are
    the leaves in that walk order.  Done breadth-first with numpy: expanding
    each parent in place keeps the depth-first leaf order.
    """
    sp = tensor.Sparsity()
    shape = [int(s) for s in tensor.ShapeAsNumpy()]
    rank = len(shape)
    order = [int(v) for v in sp.TraversalOrderAsNumpy()]
    block_map = [int(v) for v in sp.BlockMapAsNumpy()] if sp.BlockMapLength() else []
    pos = np.zeros(1, np.int64)          # node index within the current level
    coords = np.zeros((1, 0), np.int64)  # coordinate per level walked so far
    for level in range(sp.DimMetadataLength()):
        dm = sp.DimMetadata(level)
        if dm.Format() == tflite.DimensionType.DENSE:
            n = dm.DenseSize()
            child = (pos[:, None] * n + np.arange(n)).ravel()
            counts = np.full(len(pos), n)
            coord = np.tile(np.arange(n), len(pos))
        else:
            seg = read_index_vector(dm.ArraySegments(), dm.ArraySegmentsType())
            idx = read_index_vector(dm.ArrayIndices(), dm.ArrayIndicesType())
            start, counts = seg[pos], seg[pos + 1] - seg[pos]
            first = np.cumsum(counts) - counts
            child = np.repeat(start - first, counts) + np.arange(counts.sum())
            coord = idx[child]
        coords = np.column_stack([np.repeat(coords, counts, axis=0), coord])
        pos = child
    if len(pos) != values.size:
        raise ValueError(f"sparse tensor: {len(pos)} positions but {values.size} values")
    dense_idx = np.zeros((len(pos), rank), np.int64)
    for level in range(rank):
        dense_idx[:, order[level]] = coords[:, level]
    for level in range(rank, len(order)):  # block levels refine their outer dim
        dim = block_map[order[level] - rank]
        size = sp.DimMetadata(level).DenseSize()
        dense_idx[:, dim] = dense_idx[:, dim] * size + coords[:, level]
    dense = np.zeros(shape, values.dtype)
    dense[tuple(dense_idx.T)] = values.ravel()
    return dense


def same_pads(in_hw, kernel, strides, dilations) -> list[int]:
    """Explicit ONNX pads [top, left, bottom, right] for TFLite SAME padding.

    TFLite puts the odd extra pixel at the bottom/right; ONNX SAME_UPPER would
    too, but explicit pads avoid relying on auto_pad support in every runtime.
    """
    begin, end = [], []
    for size, k, s, d in zip(in_hw, kernel, strides, dilations, strict=True):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return begin + end


class TfliteToOnnx:
    """Translate the single subgraph of a float TFLite CNN into an ONNX graph."""

    def __init__(self, tflite_path: Path, output_names: list[str]):
        self.buf = tflite_path.read_bytes()
        self.model = tflite.Model.GetRootAsModel(self.buf, 0)
        if self.model.SubgraphsLength() != 1:
            raise ValueError("expected one subgraph")
        self.g = self.model.Subgraphs(0)
        self.nodes, self.inits, self.used = [], [], set()
        self.consts: dict[int, np.ndarray] = {}
        self.acts: dict[int, tuple[str, bool]] = {}  # tensor -> (onnx name, stored NCHW?)
        self.names: dict[int, str] = {}
        (self.input_idx,) = self.g.InputsAsNumpy()
        self.output_idx = list(self.g.OutputsAsNumpy())
        self.names[self.input_idx] = "input"
        for idx, name in zip(self.output_idx, output_names, strict=True):
            self.names[idx] = name
        for i in range(self.g.TensorsLength()):
            t = self.g.Tensors(i)
            data = self.model.Buffers(t.Buffer()).DataAsNumpy()
            if isinstance(data, np.ndarray) and data.size and t.Sparsity() is None:
                arr = np.frombuffer(data.tobytes(), NP_DTYPES[t.Type()])
                self.consts[i] = arr.reshape([int(s) for s in t.ShapeAsNumpy()])

    # -- helpers -----------------------------------------------------------
    def shape(self, idx: int) -> list[int]:
        return [int(s) for s in self.g.Tensors(idx).ShapeAsNumpy()]

    def unique(self, base: str) -> str:
        name, k = base, 1
        while name in self.used:
            name, k = f"{base}_{k}", k + 1
        self.used.add(name)
        return name

    def tensor_name(self, idx: int) -> str:
        if idx not in self.names:
            self.names[idx] = self.unique(self.g.Tensors(idx).Name().decode())
        return self.names[idx]

    def const(self, base: str, array: np.ndarray) -> str:
        name = self.unique(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def nchw(self, idx: int) -> str:
        """ONNX name of activation `idx` in NCHW."""
        name, is_nchw = self.acts[idx]
        assert is_nchw and len(self.shape(idx)) == 4, "expected a 4-D NCHW activation"
        return name

    def plain(self, idx: int) -> str:
        """ONNX name of activation `idx` in TFLite's own layout."""
        name, is_nchw = self.acts[idx]
        if not is_nchw:
            return name
        return self.node("Transpose", [name], self.unique(name + "/nhwc"), perm=NCHW_TO_NHWC)

    def activation(self, fused: int, x: str, out_idx: int, is_nchw: bool = True) -> None:
        """Emit the fused activation (if any) producing tensor out_idx."""
        out = self.tensor_name(out_idx)
        A = tflite.ActivationFunctionType
        if fused == A.NONE:
            # the producing node was emitted with a provisional name; rename it
            self.nodes[-1].output[0] = out
            self.nodes[-1].name = out
        elif fused == A.RELU:
            self.node("Relu", [x], out)
        elif fused == A.RELU6:
            self.node("Clip", [x, self.const("zero", np.float32(0)), self.const("six", np.float32(6))], out)
        else:
            raise NotImplementedError(f"fused activation {fused}")
        self.acts[out_idx] = (out, is_nchw)

    def finish_nchw(self, op: str, inputs: list[str], out_idx: int, fused: int = 0, **attrs) -> None:
        pre = self.unique(self.g.Tensors(out_idx).Name().decode() + "/pre_act")
        self.node(op, inputs, pre, **attrs)
        self.activation(fused, pre, out_idx)

    # -- ops -----------------------------------------------------------------
    def op_CONV_2D(self, ins, outs, o):
        w = self.consts[ins[1]].astype(np.float32)              # O,KH,KW,I
        x_shape = self.shape(ins[0])
        k = list(w.shape[1:3])
        strides, dil = [o.StrideH(), o.StrideW()], [o.DilationHFactor(), o.DilationWFactor()]
        pads = same_pads(x_shape[1:3], k, strides, dil) if o.Padding() == tflite.Padding.SAME else [0] * 4
        inputs = [self.nchw(ins[0]), self.const(self.tensor_name(ins[1]), w.transpose(0, 3, 1, 2))]
        if len(ins) > 2:
            inputs.append(self.const(self.tensor_name(ins[2]), self.consts[ins[2]].astype(np.float32)))
        self.finish_nchw("Conv", inputs, outs[0], o.FusedActivationFunction(), kernel_shape=k,
                         strides=strides, dilations=dil, pads=pads, group=1)

    def op_DEPTHWISE_CONV_2D(self, ins, outs, o):
        w = self.consts[ins[1]].astype(np.float32)              # 1,KH,KW,C*M
        x_shape = self.shape(ins[0])
        channels = x_shape[3]
        assert w.shape[3] == channels * o.DepthMultiplier() or o.DepthMultiplier() == 0
        k = list(w.shape[1:3])
        strides, dil = [o.StrideH(), o.StrideW()], [o.DilationHFactor(), o.DilationWFactor()]
        pads = same_pads(x_shape[1:3], k, strides, dil) if o.Padding() == tflite.Padding.SAME else [0] * 4
        w_onnx = w[0].transpose(2, 0, 1)[:, None]              # C*M,1,KH,KW
        inputs = [self.nchw(ins[0]), self.const(self.tensor_name(ins[1]), w_onnx)]
        if len(ins) > 2:
            inputs.append(self.const(self.tensor_name(ins[2]), self.consts[ins[2]].astype(np.float32)))
        self.finish_nchw("Conv", inputs, outs[0], o.FusedActivationFunction(), kernel_shape=k,
                         strides=strides, dilations=dil, pads=pads, group=channels)

    def op_MAX_POOL_2D(self, ins, outs, o):
        k, strides = [o.FilterHeight(), o.FilterWidth()], [o.StrideH(), o.StrideW()]
        pads = (same_pads(self.shape(ins[0])[1:3], k, strides, [1, 1])
                if o.Padding() == tflite.Padding.SAME else [0] * 4)
        self.finish_nchw("MaxPool", [self.nchw(ins[0])], outs[0], o.FusedActivationFunction(),
                         kernel_shape=k, strides=strides, pads=pads)

    def op_ADD(self, ins, outs, o):
        if any(i in self.consts for i in ins) or any(len(self.shape(i)) != 4 for i in ins):
            raise NotImplementedError("ADD is only handled for two 4-D activations")
        self.finish_nchw("Add", [self.nchw(ins[0]), self.nchw(ins[1])], outs[0],
                         o.FusedActivationFunction())

    def op_RELU(self, ins, outs, o):
        self.node("Relu", [self.acts[ins[0]][0]], self.tensor_name(outs[0]))
        self.acts[outs[0]] = (self.tensor_name(outs[0]), self.acts[ins[0]][1])

    def op_PAD(self, ins, outs, o):
        p = self.consts[ins[1]].astype(np.int64)               # [[before, after]] per NHWC dim
        p = p[NHWC_TO_NCHW]
        pads = self.const(self.tensor_name(ins[1]), np.concatenate([p[:, 0], p[:, 1]]))
        self.finish_nchw("Pad", [self.nchw(ins[0]), pads], outs[0], mode="constant")

    def op_RESIZE_BILINEAR(self, ins, outs, o):
        n, h, w, c = self.shape(outs[0])
        if o.AlignCorners():
            mode = "align_corners"
        elif o.HalfPixelCenters():
            mode = "half_pixel"  # same sampling as TF's half_pixel_centers bilinear
        else:
            mode = "asymmetric"
        sizes = self.const(self.tensor_name(outs[0]) + "/sizes", np.array([n, c, h, w], np.int64))
        self.finish_nchw("Resize", [self.nchw(ins[0]), "", "", sizes], outs[0],
                         mode="linear", coordinate_transformation_mode=mode)

    def op_DEPTH_TO_SPACE(self, ins, outs, o):
        # TF's DepthToSpace channel order is ONNX's "DCR" mode.
        self.finish_nchw("DepthToSpace", [self.nchw(ins[0])], outs[0],
                         blocksize=o.BlockSize(), mode="DCR")

    def op_RESHAPE(self, ins, outs, o):
        # Reshape must see the data in TFLite's (NHWC) element order.
        x = self.plain(ins[0])
        target = np.array(self.shape(outs[0]), np.int64)
        out = self.tensor_name(outs[0])
        if len(target) == 4:
            y = self.node("Reshape", [x, self.const(out + "/shape", target)], self.unique(out + "/nhwc"))
            self.node("Transpose", [y], out, perm=NHWC_TO_NCHW)
            self.acts[outs[0]] = (out, True)
        else:
            self.node("Reshape", [x, self.const(out + "/shape", target)], out)
            self.acts[outs[0]] = (out, False)

    def op_CONCATENATION(self, ins, outs, o):
        rank = len(self.shape(ins[0]))
        axis = o.Axis() % rank
        if all(self.acts[i][1] for i in ins):
            axis, xs, is_nchw = NHWC_TO_NCHW.index(axis), [self.nchw(i) for i in ins], True
        else:
            xs, is_nchw = [self.plain(i) for i in ins], False
        pre = self.unique(self.g.Tensors(outs[0]).Name().decode() + "/pre_act")
        self.node("Concat", xs, pre, axis=axis)
        self.activation(o.FusedActivationFunction(), pre, outs[0], is_nchw)

    # -- driver ----------------------------------------------------------------
    def convert(self, doc: str, metadata: dict[str, str]) -> onnx.ModelProto:
        in_shape = self.shape(self.input_idx)
        assert len(in_shape) == 4 and in_shape[3] == 3, in_shape
        self.used.update(self.names.values())
        self.acts[self.input_idx] = (
            self.node("Transpose", ["input"], self.unique("input/nchw"), perm=NHWC_TO_NCHW), True)
        for i in range(self.g.OperatorsLength()):
            op = self.g.Operators(i)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            opname = OPNAMES[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
            ins = [int(v) for v in op.InputsAsNumpy() if v >= 0]
            outs = [int(v) for v in op.OutputsAsNumpy()]
            if opname == "DENSIFY":
                t = self.g.Tensors(ins[0])
                data = self.model.Buffers(t.Buffer()).DataAsNumpy()
                self.consts[outs[0]] = densify(t, np.frombuffer(data.tobytes(), NP_DTYPES[t.Type()]))
                continue
            if opname == "DEQUANTIZE":
                if ins[0] not in self.consts or self.g.Tensors(ins[0]).Type() != tflite.TensorType.FLOAT16:
                    raise NotImplementedError("only constant fp16 DEQUANTIZE is supported")
                self.consts[outs[0]] = self.consts[ins[0]].astype(np.float32)
                continue
            handler = getattr(self, f"op_{opname}", None)
            if handler is None:
                raise NotImplementedError(f"tflite op {opname}")
            options = None
            if opname in OPTION_CLASSES:
                table = op.BuiltinOptions()
                options = OPTION_CLASSES[opname]()
                options.Init(table.Bytes, table.Pos)
            handler(ins, outs, options)

        outputs = []
        for idx in self.output_idx:
            name, is_nchw = self.acts[idx]
            assert not is_nchw and name == self.names[idx], "graph outputs must be plain tensors"
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, self.shape(idx)))
        graph = helper.make_graph(
            self.nodes, "blazeface",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
            outputs, initializer=self.inits)
        model = helper.make_model(graph, producer_name="framegraph scripts/convert_face_models.py",
                                  opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                                  ir_version=ONNX_IR_VERSION, doc_string=doc)
        helper.set_model_props(model, metadata)
        onnx.checker.check_model(model, full_check=True)
        return model


def output_names(tflite_path: Path) -> list[str]:
    """'regressors'/'classificators' by shape: the full-range tflite calls them
    Identity/Identity_1, the short-range one already uses these names."""
    m = tflite.Model.GetRootAsModel(tflite_path.read_bytes(), 0)
    g = m.Subgraphs(0)
    shapes = [list(g.Tensors(i).ShapeAsNumpy()) for i in g.OutputsAsNumpy()]
    if [s[-1] for s in shapes] != [16, 1] or shapes[0][1] != shapes[1][1]:
        raise ValueError(f"unexpected output shapes {shapes}")
    return ["regressors", "classificators"]


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
        src = args.out_dir / tfl
        conv = TfliteToOnnx(src, output_names(src))
        model = conv.convert(
            doc=(f"BlazeFace {key} face detector converted from MediaPipe {MEDIAPIPE_VERSION} "
                 f"{WHEEL_MODULE_DIR}/{tfl} by scripts/convert_face_models.py. Input NHWC float32 "
                 "RGB in [-1,1]; outputs regressors [1,N,16], classificators [1,N,1] (logits)."),
            metadata={"source": f"mediapipe=={MEDIAPIPE_VERSION}:{WHEEL_MODULE_DIR}/{tfl}",
                      "source_sha256": hashes[tfl], "input_layout": "NHWC",
                      "input_range": "[-1,1] RGB", "license": "Apache-2.0"})
        dst = args.out_dir / onnx_name
        onnx.save(model, dst)
        print(f"wrote {dst} (opset {ONNX_OPSET}, {len(model.graph.node)} nodes) sha256 {sha256_of(dst)}")
        smoke_test(dst)


if __name__ == "__main__":
    main()
