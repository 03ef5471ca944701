"""model_header.read_inputs: model inputs read from the file, checked against the engines' own answer."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from calculators.inference.model_header import ModelInput, read_inputs
from pipelines.errors import ModelError

ROOT = Path(__file__).resolve().parents[3]
MODELS = ROOT / "assets" / "models"
ONNX_MODELS = sorted(MODELS.glob("*.onnx"))
TFLITE_MODELS = sorted(MODELS.glob("*.tflite"))
ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
             "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(uint8)": "uint8", "tensor(int8)": "int8",
             "tensor(bool)": "bool"}


@pytest.fixture
def dynamic_onnx(tmp_path) -> Path:
    """x [N, 3] float, weight [3, 4] listed among the inputs but also an initializer (as old exporters did),
    k [?] int64 with a dimension that has neither value nor name."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "weight"], ["y"])], "g",
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3]),
                helper.make_tensor_value_info("weight", TensorProto.FLOAT, [3, 4]),
                helper.make_tensor_value_info("k", TensorProto.INT64, [None])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        initializer=[numpy_helper.from_array(np.ones((3, 4), np.float32), "weight")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    path = tmp_path / "dynamic.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture
def dynamic_tflite(tmp_path) -> Path:
    """BlazeFace short range with its input's shape_signature made [-1, 128, 128, 3] (a dynamic batch)."""
    flatbuffers = pytest.importorskip("flatbuffers")
    tfl = pytest.importorskip("ai_edge_litert.schema_py_generated")

    model = tfl.ModelT.InitFromPackedBuf((MODELS / "face_detection_short_range.tflite").read_bytes(), 0)
    graph = model.subgraphs[0]
    graph.tensors[graph.inputs[0]].shapeSignature = np.array([-1, 128, 128, 3], np.int32)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path = tmp_path / "dynamic.tflite"
    path.write_bytes(builder.Output())
    return path


def onnxruntime_inputs(path: Path) -> list[ModelInput]:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [ModelInput(i.name, tuple(d if isinstance(d, int) else None for d in i.shape),
                       np.dtype(ORT_TYPES[i.type])) for i in session.get_inputs()]


def litert_inputs(path: Path) -> list[ModelInput]:
    interpreter = pytest.importorskip("ai_edge_litert.interpreter").Interpreter(model_path=str(path))
    return [ModelInput(d["name"], tuple(int(s) if s >= 0 else None for s in d["shape_signature"]),
                       np.dtype(d["dtype"])) for d in interpreter.get_input_details()]


@pytest.mark.onnxruntime
@pytest.mark.parametrize("path", ONNX_MODELS, ids=lambda p: p.name)
def test_onnx_inputs_match_onnxruntime(path):
    assert read_inputs(path) == onnxruntime_inputs(path)


@pytest.mark.litert
@pytest.mark.parametrize("path", TFLITE_MODELS, ids=lambda p: p.name)
def test_tflite_inputs_match_litert(path):
    assert read_inputs(path) == litert_inputs(path)


def test_the_bundled_models():
    for path, size in [("face_detection_short_range", 128), ("face_detection_full_range", 192)]:
        assert read_inputs(MODELS / f"{path}.onnx") == [ModelInput("input", (1, size, size, 3), np.dtype("float32"))]
    assert read_inputs(MODELS / "face_detection_full_range_sparse.tflite") == [
        ModelInput("input_1", (1, 192, 192, 3), np.dtype("float32"))]


def test_onnx_dynamic_dimensions_and_initializers_among_the_inputs(dynamic_onnx):
    assert read_inputs(dynamic_onnx) == [ModelInput("x", (None, 3), np.dtype("float32")),
                                         ModelInput("k", (None,), np.dtype("int64"))]


@pytest.mark.onnxruntime
def test_onnx_dynamic_model_matches_onnxruntime(dynamic_onnx):
    assert read_inputs(dynamic_onnx) == onnxruntime_inputs(dynamic_onnx)


@pytest.mark.litert
def test_tflite_shape_signature_gives_the_dynamic_dimensions(dynamic_tflite):
    assert read_inputs(dynamic_tflite) == [ModelInput("input", (None, 128, 128, 3), np.dtype("float32"))]
    assert read_inputs(dynamic_tflite) == litert_inputs(dynamic_tflite)


@pytest.mark.parametrize("name, kind", [("face_detection_short_range.onnx", "ONNX"),
                                        ("face_detection_short_range.tflite", "TFLite")])
def test_a_truncated_file_is_a_model_error_naming_it(tmp_path, name, kind):
    data = (MODELS / name).read_bytes()
    for keep in (len(data) // 100, len(data) // 2, len(data) - 100):
        path = tmp_path / name
        path.write_bytes(data[:keep])
        expected = rf"^model {re.escape(str(path))} is not a valid {kind} file: truncated at byte {keep}\b"
        with pytest.raises(ModelError, match=expected):
            read_inputs(path)


@pytest.mark.parametrize("suffix, kind", [(".onnx", "ONNX"), (".tflite", "TFLite")])
@pytest.mark.parametrize("content", [b"", b"name: not a model\n", (ROOT / "README.md").read_bytes()[:4096]],
                         ids=["empty", "text", "readme"])
def test_a_file_that_is_not_a_model_is_a_model_error_naming_it(tmp_path, suffix, kind, content):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=rf"^model {re.escape(str(path))} is not a valid {kind} file: "):
        read_inputs(path)


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(ModelError, match=r"model.xml: cannot read the inputs of a '.xml' file; expected one of "
                                         r".onnx, .tflite"):
        read_inputs(tmp_path / "model.xml")
    with pytest.raises(ModelError, match=r"missing.onnx: cannot read it \(No such file or directory\)"):
        read_inputs(tmp_path / "missing.onnx")


def test_no_engine_or_model_package_is_imported():
    code = ("import sys; from calculators.inference.model_header import read_inputs; "
            f"read_inputs({str(ONNX_MODELS[0])!r}); read_inputs({str(TFLITE_MODELS[0])!r}); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'onnx', 'onnxruntime', 'tflite', 'ai_edge_litert', 'tensorflow', 'flatbuffers', 'google'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
