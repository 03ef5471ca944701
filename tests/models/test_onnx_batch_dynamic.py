"""scripts/onnx_batch_dynamic.py: the shipped batch-dynamic face models are reproduced byte for byte from the
fixed ones, and a batch through them is exactly each image alone through the fixed model."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnx", reason="the batch-dynamic export needs onnx")
pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "assets" / "models"
sys.path.insert(0, str(ROOT / "scripts"))
from onnx_batch_dynamic import check_batch, make_batch_dynamic  # noqa: E402

pytestmark = pytest.mark.onnxruntime
FACE_MODELS = ["face_detection_short_range", "face_detection_full_range"]


@pytest.mark.parametrize("name", FACE_MODELS)
def test_the_shipped_batch_model_is_what_the_script_makes(name, tmp_path):
    import onnx

    out = tmp_path / f"{name}_batch.onnx"
    onnx.save(make_batch_dynamic(onnx.load(str(MODELS / f"{name}.onnx"))), str(out))
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(
        (MODELS / f"{name}_batch.onnx").read_bytes()).digest()
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] != [0, 0, 0]


@pytest.mark.parametrize("name", FACE_MODELS)
def test_a_batch_gives_what_each_image_gives_alone(name):
    assert check_batch(MODELS / f"{name}.onnx", MODELS / f"{name}_batch.onnx", batch=3) <= 1e-5


def test_a_model_whose_reshape_does_not_start_with_the_batch_is_refused():
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    # [1,4,4] -> [2,8] -> [1,16]: the first Reshape mixes rows of different images.
    shapes = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in (("s1", [2, 8]), ("s2", [1, 16]))]
    nodes = [helper.make_node("Reshape", ["x", "s1"], ["m"], name="fold"),
             helper.make_node("Reshape", ["m", "s2"], ["y"], name="flatten")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])], initializer=shapes)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(ValueError, match="Reshape fold: target \\[2, 8\\]"):
        make_batch_dynamic(model)
