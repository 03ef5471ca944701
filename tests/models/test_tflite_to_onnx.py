"""scripts/tflite_to_onnx.py: operators checked against LiteRT on tiny generated models, and the shipped ONNX
files reproduced byte for byte.

The tiny models are written with LiteRT's own flatbuffer schema (ai_edge_litert.schema_py_generated), so
they exercise operator variants the shipped MediaPipe models do not use (STRIDED_SLICE with masks, MEAN over
channels, FULLY_CONNECTED on a 4-D input, ...). The converter itself needs onnx and the `tflite` package
(the `convert` extra).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tflite", reason="the converter needs the tflite package (pip install 'framegraph[convert]')")
pytest.importorskip("onnx", reason="the converter needs onnx")
ort = pytest.importorskip("onnxruntime")
fb = pytest.importorskip("ai_edge_litert.schema_py_generated", reason="needs ai-edge-litert (LiteRT)")
litert = pytest.importorskip("ai_edge_litert.interpreter", reason="needs ai-edge-litert (LiteRT)")
flatbuffers = pytest.importorskip("flatbuffers")

ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = ROOT / "assets" / "models"
sys.path.insert(0, str(ROOT / "scripts"))  # the converter's modules import each other by name
from tflite_to_onnx import TfliteToOnnx  # noqa: E402

pytestmark = [pytest.mark.onnxruntime, pytest.mark.litert]
OP, OPT = fb.BuiltinOperator, fb.BuiltinOptions


class TinyModel:
    """A one-subgraph float TFLite model built op by op."""

    def __init__(self):
        self.model = fb.ModelT()
        self.model.version, self.model.buffers, self.model.operatorCodes = 3, [fb.BufferT()], []
        self.g = fb.SubGraphT()
        self.g.tensors, self.g.operators = [], []
        self.model.subgraphs = [self.g]

    def tensor(self, shape, data=None, dtype=fb.TensorType.FLOAT32) -> int:
        t = fb.TensorT()
        t.shape, t.type, t.name = np.array(shape, np.int32), dtype, f"t{len(self.g.tensors)}".encode()
        t.buffer = 0
        if data is not None:
            buf = fb.BufferT()
            buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            self.model.buffers.append(buf)
            t.buffer = len(self.model.buffers) - 1
        self.g.tensors.append(t)
        return len(self.g.tensors) - 1

    def const(self, array: np.ndarray) -> int:
        dtype = fb.TensorType.INT32 if array.dtype == np.int32 else fb.TensorType.FLOAT32
        return self.tensor(array.shape, array, dtype)

    def op(self, code: int | str, inputs, out_shape, options_type=0, options=None) -> int:
        """A builtin op (BuiltinOperator code) or a custom one (its name; `options` its raw option bytes)."""
        key = (code, None) if isinstance(code, int) else (OP.CUSTOM, code.encode())
        codes = [(c.builtinCode, c.customCode) for c in self.model.operatorCodes]
        if key not in codes:
            c = fb.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.customCode, c.version = key[0], key[0], key[1], 1
            self.model.operatorCodes.append(c)
            codes.append(key)
        out = self.tensor(out_shape)
        op = fb.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = codes.index(key), np.array(inputs, np.int32), np.array([out], np.int32)
        if isinstance(code, str):
            op.customOptions = np.frombuffer(options, np.uint8)
        else:
            op.builtinOptionsType, op.builtinOptions = options_type, options
        self.g.operators.append(op)
        return out

    def save(self, path: Path, inputs, outputs) -> Path:
        self.g.inputs, self.g.outputs = np.array(inputs, np.int32), np.array(outputs, np.int32)
        builder = flatbuffers.Builder(1024)
        builder.Finish(self.model.Pack(builder), file_identifier=b"TFL3")
        path.write_bytes(bytes(builder.Output()))
        return path


def options(cls, **fields):
    o = cls()
    for k, v in fields.items():
        setattr(o, k, v)
    return o


def assert_onnx_matches_litert(path: Path, n_outputs: int, resolver=litert.OpResolverType.BUILTIN_REF):
    names = [f"out{i}" for i in range(n_outputs)]
    model = TfliteToOnnx(path, names).convert("test", {}, "tiny", "test")
    interp = litert.Interpreter(model_path=str(path), experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    (inp,) = interp.get_input_details()
    x = np.random.default_rng(0).uniform(-2, 2, inp["shape"]).astype(np.float32)
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    expected = [interp.get_tensor(o["index"]) for o in interp.get_output_details()]
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        names, {"input": x})
    for name, g, e in zip(names, got, expected, strict=True):
        assert g.shape == e.shape, name
        np.testing.assert_allclose(g, e, atol=1e-5, rtol=1e-5, err_msg=name)


def test_strided_slice_with_masks_and_shrink_axis_on_nchw_and_plain_tensors(tmp_path):
    m = TinyModel()
    x = m.tensor([1, 8, 8, 3])
    i32 = lambda v: np.array(v, np.int32)  # noqa: E731
    # 4-D, stays NCHW inside: rows 1..6 step 2, all columns (end mask), channels 0..1
    a = m.op(OP.STRIDED_SLICE, [x, m.const(i32([0, 1, 0, 0])), m.const(i32([1, 7, 3, 2])),
                                m.const(i32([1, 2, 1, 1]))], [1, 3, 8, 2], OPT.StridedSliceOptions,
             options(fb.StridedSliceOptionsT, endMask=0b0100))
    # reversed columns with a negative stride, begin mask on the batch axis
    b = m.op(OP.STRIDED_SLICE, [x, m.const(i32([0, 0, -1, 0])), m.const(i32([1, 8, -9, 3])),
                                m.const(i32([1, 1, -1, 1]))], [1, 8, 8, 3], OPT.StridedSliceOptions,
             options(fb.StridedSliceOptionsT, beginMask=0b0001))
    # MEAN over H, W without keepdims -> [1,3]; then channel 1 alone, its axis shrunk away
    mean = m.op(OP.MEAN, [x, m.const(i32([1, 2]))], [1, 3], OPT.ReducerOptions,
                options(fb.ReducerOptionsT, keepDims=False))
    c = m.op(OP.STRIDED_SLICE, [mean, m.const(i32([0, 1])), m.const(i32([1, 2])), m.const(i32([1, 1]))],
             [1], OPT.StridedSliceOptions, options(fb.StridedSliceOptionsT, shrinkAxisMask=0b10))
    assert_onnx_matches_litert(m.save(tmp_path / "slice.tflite", [x], [a, b, c]), 3)


def test_mean_over_channels_fully_connected_on_4d_input_sub_and_tanh(tmp_path):
    m = TinyModel()
    rng = np.random.default_rng(1)
    x = m.tensor([1, 8, 8, 3])
    channel_mean = m.op(OP.MEAN, [x, m.const(np.array([3], np.int32))], [1, 8, 8], OPT.ReducerOptions,
                        options(fb.ReducerOptionsT, keepDims=False))
    kept = m.op(OP.MEAN, [x, m.const(np.array([1, 2], np.int32))], [1, 1, 1, 3], OPT.ReducerOptions,
                options(fb.ReducerOptionsT, keepDims=True))
    fc = m.op(OP.FULLY_CONNECTED, [x, m.const(rng.normal(size=(4, 192)).astype(np.float32)),
                                   m.const(rng.normal(size=4).astype(np.float32))], [1, 4],
              OPT.FullyConnectedOptions,
              options(fb.FullyConnectedOptionsT, fusedActivationFunction=fb.ActivationFunctionType.RELU))
    sub = m.op(OP.SUB, [fc, m.const(np.float32([0.5, -1, 2, 0]))], [1, 4], OPT.SubOptions, fb.SubOptionsT())
    tanh = m.op(OP.TANH, [sub], [1, 4])
    assert_onnx_matches_litert(m.save(tmp_path / "fc.tflite", [x], [channel_mean, kept, tanh]), 3)


def test_average_pool_same_padding_hard_swish_prelu_and_mul_by_a_constant(tmp_path):
    m = TinyModel()
    x = m.tensor([1, 8, 8, 3])
    # SAME padding at the border: TFLite averages over the valid pixels only
    pool = m.op(OP.AVERAGE_POOL_2D, [x], [1, 4, 4, 3], OPT.Pool2DOptions,
                options(fb.Pool2DOptionsT, padding=fb.Padding.SAME, strideW=2, strideH=2,
                        filterWidth=3, filterHeight=3))
    hs = m.op(OP.HARD_SWISH, [pool], [1, 4, 4, 3])
    prelu = m.op(OP.PRELU, [hs, m.const(np.float32([[[0.1, 0.2, -0.3]]]))], [1, 4, 4, 3])
    mul = m.op(OP.MUL, [prelu, m.const(np.float32([2.0, -1.0, 0.5]))], [1, 4, 4, 3], OPT.MulOptions,
               fb.MulOptionsT())
    sig = m.op(OP.LOGISTIC, [mul], [1, 4, 4, 3])
    assert_onnx_matches_litert(m.save(tmp_path / "pool.tflite", [x], [sig]), 1)


@pytest.mark.parametrize("kernel", [2, 3])
def test_mediapipes_custom_transposed_convolution(tmp_path, kernel):
    """Convolution2DTransposeBias, SAME padding, stride 2: kernel 2 becomes Conv + DepthToSpace, kernel 3 a
    padded ConvTranspose. Only LiteRT's XNNPACK delegate implements the op, hence the AUTO resolver."""
    import struct

    m = TinyModel()
    rng = np.random.default_rng(2)
    x = m.tensor([1, 8, 8, 3])
    weights = m.const(rng.normal(size=(4, kernel, kernel, 3)).astype(np.float32))  # O, KH, KW, I
    bias = m.const(rng.normal(size=4).astype(np.float32))
    same, stride = 1, 2  # TfLiteTransposeConvParams {padding, stride_width, stride_height}
    y = m.op("Convolution2DTransposeBias", [x, weights, bias], [1, 16, 16, 4],
             options=struct.pack("<3i", same, stride, stride))
    assert_onnx_matches_litert(m.save(tmp_path / "tconv.tflite", [x], [y]), 1, litert.OpResolverType.AUTO)


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"_scripts_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_small_mediapipe_models_convert_to_the_committed_bytes():
    conv = _load_script("convert_mediapipe_models")
    manifest = json.loads((MODELS_DIR / "mediapipe_models.json").read_text())["models"]
    for name in ["selfie_segmentation", "face_landmark"]:
        entry = manifest[name]
        _, out_names, value_range = conv.MODELS[name]
        model = conv.convert(name, MODELS_DIR / f"{name}.tflite", out_names, entry["tflite"]["sha256"], value_range)
        assert hashlib.sha256(model.SerializeToString()).hexdigest() == entry["onnx"]["sha256"], name


def test_face_detectors_still_convert_to_their_committed_bytes():
    face = _load_script("convert_face_models")
    for tfl, _, onnx_name, key in face.MODELS:
        src = MODELS_DIR / tfl
        model = face.convert_model(src, key, face.sha256_of(src))
        committed = hashlib.sha256((MODELS_DIR / onnx_name).read_bytes()).hexdigest()
        assert hashlib.sha256(model.SerializeToString()).hexdigest() == committed, onnx_name
