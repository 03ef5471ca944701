"""Translate a float TFLite CNN (one subgraph) into an equivalent ONNX graph.

Used by scripts/convert_face_models.py and scripts/convert_mediapipe_models.py.
Needs numpy, onnx and the `tflite` flatbuffer package (`pip install tflite`),
not TensorFlow and not mediapipe.

Why a purpose-built converter rather than tflite2onnx: MediaPipe's models store
weights as fp16 (and some as sparse fp16 tensors expanded at run time by
DENSIFY), use DEPTH_TO_SPACE and MediaPipe's custom
`Convolution2DTransposeBias`; tflite2onnx knows none of these and also turns
the graph input into NCHW.  The models use a few dozen simple builtin ops, so
translating them directly is short and keeps the TFLite interface exactly:
input "input" NHWC float32, outputs in TFLite's order and layout.

Layout: every 4-D activation runs NCHW inside the graph (the only layout ONNX
Conv/Pool/Resize accept); other activations keep TFLite's own layout.  One
Transpose after the input, one before each Reshape/FullyConnected of a 4-D
activation and one before each 4-D graph output convert back and forth.
Constant subgraphs (DENSIFY, fp16 DEQUANTIZE) are folded into fp32
initializers, which is also what LiteRT does at prepare time.

The output is deterministic: converting twice gives identical bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import tflite
from onnx import TensorProto, helper, numpy_helper

from tflite_onnx_ops import NCHW_TO_NHWC, NHWC_TO_NCHW, OPTION_CLASSES, TfliteOps

ONNX_OPSET = 13  # Resize with empty roi/scales inputs; loads in ORT and OpenVINO
ONNX_IR_VERSION = 8  # opset 13 needs IR >= 7; kept low for older runtimes

OPNAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
NP_DTYPES = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16,
             tflite.TensorType.INT32: np.int32, tflite.TensorType.INT64: np.int64,
             tflite.TensorType.UINT8: np.uint8, tflite.TensorType.INT8: np.int8}

__all__ = ["ONNX_OPSET", "ONNX_IR_VERSION", "TfliteToOnnx", "densify", "op_counts"]


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


def operator_name(model, op) -> str:
    """Builtin op name (CONV_2D, ...) or the custom op's own name."""
    code = model.OperatorCodes(op.OpcodeIndex())
    name = OPNAMES[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
    if name == "CUSTOM":
        name = code.CustomCode().decode()
    return name


def op_counts(tflite_path: Path) -> dict[str, int]:
    """How many of each operator the model's subgraph has (for model cards)."""
    model = tflite.Model.GetRootAsModel(tflite_path.read_bytes(), 0)
    g = model.Subgraphs(0)
    counts: dict[str, int] = {}
    for i in range(g.OperatorsLength()):
        name = operator_name(model, g.Operators(i))
        counts[name] = counts.get(name, 0) + 1
    return counts


class TfliteToOnnx(TfliteOps):
    """Translate the single subgraph of a float TFLite CNN into an ONNX graph.

    The op handlers (op_CONV_2D, ...) live in tflite_onnx_ops.TfliteOps.
    """

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
        # 4-D outputs are produced NCHW under a provisional name, then
        # transposed back into TFLite's NHWC under the public name.
        self.nhwc_outputs: dict[int, str] = {}
        for idx, name in zip(self.output_idx, output_names, strict=True):
            if len(self.shape(idx)) == 4:
                self.nhwc_outputs[idx] = name
                self.used.add(name)
            else:
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
        self.finish(op, inputs, out_idx, fused, True, **attrs)

    def finish(self, op: str, inputs: list[str], out_idx: int, fused: int, is_nchw: bool,
               **attrs) -> None:
        pre = self.unique(self.g.Tensors(out_idx).Name().decode() + "/pre_act")
        self.node(op, inputs, pre, **attrs)
        self.activation(fused, pre, out_idx, is_nchw)

    # -- driver ----------------------------------------------------------------
    def convert(self, doc: str, metadata: dict[str, str], graph_name: str,
                producer: str) -> onnx.ModelProto:
        in_shape = self.shape(self.input_idx)
        assert len(in_shape) == 4 and in_shape[3] == 3, in_shape
        self.used.update(self.names.values())
        self.acts[self.input_idx] = (
            self.node("Transpose", ["input"], self.unique("input/nchw"), perm=NHWC_TO_NCHW), True)
        for i in range(self.g.OperatorsLength()):
            op = self.g.Operators(i)
            opname = operator_name(self.model, op)
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
            elif op.CustomOptionsLength():
                options = op.CustomOptionsAsNumpy().tobytes()
            handler(ins, outs, options)

        outputs = []
        for idx in self.output_idx:
            if idx in self.nhwc_outputs:
                name = self.node("Transpose", [self.nchw(idx)], self.nhwc_outputs[idx], perm=NCHW_TO_NHWC)
            else:
                name, is_nchw = self.acts[idx]
                assert not is_nchw and name == self.names[idx], "graph outputs must be plain tensors"
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, self.shape(idx)))
        graph = helper.make_graph(
            self.nodes, graph_name,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
            outputs, initializer=self.inits)
        model = helper.make_model(graph, producer_name=producer,
                                  opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                                  ir_version=ONNX_IR_VERSION, doc_string=doc)
        helper.set_model_props(model, metadata)
        onnx.checker.check_model(model, full_check=True)
        return model
