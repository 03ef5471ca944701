"""The inputs of an .onnx or .tflite model (name, shape, dtype), read from the file itself: no engine, no onnx or
tflite package, nothing imported but numpy.

    >>> read_inputs(Path("assets/models/face_detection_short_range.onnx"))
    [ModelInput(name='input', shape=(1, 128, 128, 3), dtype=dtype('float32'))]

ONNX is protobuf: a few dozen lines of wire-format reading walk ModelProto.graph (7) -> GraphProto.input (11),
leaving out the inputs that old exporters also list as initializers (5, and sparse_initializer 15): those are
weights, not inputs. TFLite is a flatbuffer: Model.subgraphs[0] -> its `inputs` indices into `tensors`. Field
numbers are those of onnx/onnx.proto and tensorflow/lite/schema/schema.fbs (Model 2 subgraphs; SubGraph 0
tensors, 1 inputs; Tensor 0 shape, 1 type, 3 name, 7 shape_signature).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from pipelines.errors import ModelError

__all__ = ["ModelInput", "read_inputs", "SUFFIXES"]

#: The model files whose inputs `read_inputs` can read.
SUFFIXES = (".onnx", ".tflite")


@dataclass(frozen=True)
class ModelInput:
    """One input of a model. `shape` has None for each dynamic dimension (an ONNX dim_param or a dimension
    without a value, a TFLite shape_signature -1), and is None itself when the model does not say the rank.
    `dtype` is None for element types numpy has no dtype for (bfloat16, int4, resources) and for inputs that are
    not tensors (ONNX sequences, maps). String tensors are `object`."""

    name: str
    shape: tuple[int | None, ...] | None
    dtype: np.dtype | None


def read_inputs(path: str | Path) -> list[ModelInput]:
    """The inputs of the model at `path`, in the model's order; ModelError for an unknown suffix, an unreadable
    file, or one that is not a valid model of its kind."""
    path = Path(path)
    kind = _FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ModelError(f"model {path}: cannot read the inputs of a '{path.suffix}' file; expected one of "
                         f"{', '.join(SUFFIXES)}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"model {path}: cannot read it ({exc.strerror or exc})") from exc
    name, parse = kind
    try:
        if not data:
            raise _Invalid("the file is empty")
        return parse(data)
    except _Invalid as exc:
        raise ModelError(f"model {path} is not a valid {name} file: {exc}") from None


class _Invalid(Exception):
    """What is wrong with the bytes, and where: 'truncated at byte 1234'."""


# --- ONNX: protobuf wire format ---------------------------------------------------------------------------

ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "object",
               9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64",
               15: "complex128"}  # TensorProto.DataType; the rest (bfloat16, float8, int4 ...) have no numpy dtype


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end:
            raise _Invalid(f"truncated at byte {end}")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos
        if shift >= 70:
            raise _Invalid(f"varint longer than 10 bytes at byte {pos}")


def _fields(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int | slice]]:
    """(field number, value) of each field of the message in data[start:end]: an int for a varint, a slice of
    `data` for a length-delimited field (a message, string or packed array), None for fixed-size ones."""
    pos, end = start, len(data) if end is None else end
    while pos < end:
        at = pos
        key, pos = _varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Invalid(f"field number 0 at byte {at}")
        if wire == 0:
            value, pos = _varint(data, pos, end)
        elif wire == 2:
            size, pos = _varint(data, pos, end)
            value, pos = slice(pos, pos + size), pos + size
        elif wire in (1, 5):
            value, pos = None, pos + (8 if wire == 1 else 4)
        else:
            raise _Invalid(f"unsupported wire type {wire} at byte {at}")
        if pos > end:
            raise _Invalid(f"truncated at byte {end}")
        yield number, value


def _message(value, what: str) -> slice:
    if not isinstance(value, slice):
        raise _Invalid(f"{what} is not a message")
    return value


def _onnx_inputs(data: bytes) -> list[ModelInput]:
    graph = None
    for number, value in _fields(data):
        if number == 7:  # ModelProto.graph
            graph = _message(value, "graph")
    if graph is None:
        raise _Invalid("no graph (ModelProto field 7)")
    inputs, weights = [], set()
    for number, value in _fields(data, graph.start, graph.stop):
        if number == 11:  # GraphProto.input: ValueInfoProto
            inputs.append(_value_info(data, _message(value, "graph input")))
        elif number == 5:  # GraphProto.initializer: TensorProto, name is 8
            weights.add(_string_field(data, _message(value, "initializer"), 8))
        elif number == 15:  # GraphProto.sparse_initializer: SparseTensorProto, values (1) is the TensorProto
            values = _first(data, _message(value, "sparse initializer"), 1)
            if values is not None:
                weights.add(_string_field(data, values, 8))
    return [i for i in inputs if i.name not in weights]


def _value_info(data: bytes, info: slice) -> ModelInput:
    name = _string_field(data, info, 1)
    type_proto = _first(data, info, 2)  # ValueInfoProto.type: TypeProto
    tensor = _first(data, type_proto, 1) if type_proto is not None else None  # TypeProto.tensor_type
    if tensor is None:  # a sequence, map or optional: no tensor shape to give
        return ModelInput(name, None, None)
    elem_type, shape = 0, None
    for number, value in _fields(data, tensor.start, tensor.stop):
        if number == 1 and isinstance(value, int):  # TypeProto.Tensor.elem_type
            elem_type = value
        elif number == 2:  # TypeProto.Tensor.shape: TensorShapeProto, its dims are field 1
            value = _message(value, "shape")
            shape = tuple(_dim(data, _message(v, "dimension")) for n, v in _fields(data, value.start, value.stop)
                          if n == 1)
    dtype = ONNX_DTYPES.get(elem_type)
    return ModelInput(name, shape, np.dtype(dtype) if dtype else None)


def _dim(data: bytes, dim: slice) -> int | None:
    """TensorShapeProto.Dimension: dim_value (1) or dim_param (2, a symbol: dynamic) or neither (dynamic)."""
    for number, value in _fields(data, dim.start, dim.stop):
        if number == 1 and isinstance(value, int):
            value = value - (1 << 64) if value >= 1 << 63 else value  # int64 in two's complement
            return value if value >= 0 else None
    return None


def _first(data: bytes, message: slice, field: int) -> slice | None:
    return next((v for n, v in _fields(data, message.start, message.stop) if n == field and isinstance(v, slice)),
                None)


def _string_field(data: bytes, message: slice, field: int) -> str:
    value = _first(data, message, field)
    return "" if value is None else _utf8(data[value], value.start)


def _utf8(raw: bytes, at: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Invalid(f"a name at byte {at} is not UTF-8") from None


# --- TFLite: flatbuffers ------------------------------------------------------------------------------------

TFLITE_DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "object", 6: "bool",
                 7: "int16", 8: "complex64", 9: "int8", 10: "float64", 11: "complex128", 12: "uint64",
                 15: "uint32", 16: "uint16"}  # TensorType; resource, variant, int4, bfloat16 ...: no numpy dtype


class _Flatbuffer:
    """Bounds-checked reads of flatbuffer tables, vectors and strings (all little-endian)."""

    def __init__(self, data: bytes):
        self.data = data

    def read(self, fmt: str, pos: int):
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.data):
            raise _Invalid(f"truncated at byte {len(self.data)} (needs bytes {pos}..{pos + size})")
        return struct.unpack_from("<" + fmt, self.data, pos)[0]

    def field(self, table: int, index: int) -> int | None:
        """Where field `index` of the table at `table` is stored, or None when it is absent (its default)."""
        vtable = table - self.read("i", table)
        entry = 4 + 2 * index
        if entry >= self.read("H", vtable):
            return None
        offset = self.read("H", vtable + entry)
        return table + offset if offset else None

    def indirect(self, pos: int) -> int:
        return pos + self.read("I", pos)

    def vector(self, table: int, index: int) -> tuple[int, int]:
        """(position of the first element, length) of a vector field; (0, 0) when absent."""
        pos = self.field(table, index)
        if pos is None:
            return 0, 0
        vec = self.indirect(pos)
        return vec + 4, self.read("I", vec)

    def ints(self, table: int, index: int) -> list[int]:
        start, n = self.vector(table, index)
        return [self.read("i", start + 4 * i) for i in range(n)]

    def tables(self, table: int, index: int) -> list[int]:
        start, n = self.vector(table, index)
        return [self.indirect(start + 4 * i) for i in range(n)]

    def string(self, table: int, index: int) -> str:
        start, n = self.vector(table, index)
        if start + n > len(self.data):
            raise _Invalid(f"truncated at byte {len(self.data)} (a string runs to byte {start + n})")
        return _utf8(self.data[start:start + n], start)


def _tflite_inputs(data: bytes) -> list[ModelInput]:
    if data[4:8] != b"TFL3":
        raise _Invalid("no TFL3 file identifier at byte 4")
    fb = _Flatbuffer(data)
    model = fb.indirect(0)
    subgraphs = fb.tables(model, 2)  # Model.subgraphs
    if not subgraphs:
        raise _Invalid("no subgraph")
    graph = subgraphs[0]
    tensors = fb.tables(graph, 0)  # SubGraph.tensors
    inputs = []
    for index in fb.ints(graph, 1):  # SubGraph.inputs
        if not 0 <= index < len(tensors):
            raise _Invalid(f"input tensor {index} of {len(tensors)} does not exist")
        tensor = tensors[index]
        # shape_signature (7) has -1 where a dimension is dynamic; models without one are fully static.
        dims = fb.ints(tensor, 7) or fb.ints(tensor, 0)
        type_at = fb.field(tensor, 1)
        dtype = TFLITE_DTYPES.get(fb.read("b", type_at) if type_at is not None else 0)  # absent: FLOAT32
        inputs.append(ModelInput(fb.string(tensor, 3), tuple(d if d >= 0 else None for d in dims),
                                 np.dtype(dtype) if dtype else None))
    # The weights are not needed, but a file cut short is no model: every buffer must end inside the file.
    for buffer in fb.tables(model, 4):  # Model.buffers: Buffer.data (0), or offset (1) and size (2) in the file
        start, size = fb.vector(buffer, 0)
        offset_at, size_at = fb.field(buffer, 1), fb.field(buffer, 2)
        if offset_at is not None and size_at is not None:
            start, size = fb.read("Q", offset_at), fb.read("Q", size_at)
        if start + size > len(data):
            raise _Invalid(f"truncated at byte {len(data)} (a weight buffer runs to byte {start + size})")
    return inputs


_FORMATS = {".onnx": ("ONNX", _onnx_inputs), ".tflite": ("TFLite", _tflite_inputs)}  # suffix: (name, parser)
