"""What engines that convert from ONNX share: reading the ONNX model's inputs and outputs (kept beside a
converted model, since ncnn, MNN and TorchScript files do not declare them), and `input_shapes` for models
that declare no shapes."""
from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

import numpy as np

from pipelines.errors import ModelError

from pipelines.engines import TensorSpec


def onnx_io(model) -> tuple[list[dict], list[dict]]:
    """An onnx.ModelProto's graph inputs (initializers left out) and outputs as {name, shape, dtype} dicts."""
    from onnx import helper

    initializers = {i.name for i in model.graph.initializer}

    def describe(value) -> dict:
        t = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in t.shape.dim]
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)).name
        return {"name": value.name, "shape": shape, "dtype": dtype}

    return ([describe(v) for v in model.graph.input if v.name not in initializers],
            [describe(v) for v in model.graph.output])


def spec_from_dict(d: Mapping) -> TensorSpec:
    return TensorSpec(d["name"], tuple(d["shape"]), np.dtype(d["dtype"]))


def check_input_shapes(shapes: tuple[tuple[int, ...], ...]) -> None:
    """The option `input_shapes` (one shape of positive ints per model input) or ValueError."""
    if any(not s or any(d < 1 for d in s) for s in shapes):
        raise ValueError(f"input_shapes: expected one shape of positive ints per input (e.g. [[1, 128, 128, 3]]), "
                         f"got {[list(s) for s in shapes]}")


def check_shape_count(path: Path, shapes: list, expected: int, engine: str) -> None:
    if len(shapes) != expected:
        raise ModelError(f"engine '{engine}': the option input_shapes lists {len(shapes)} shape(s) but "
                         f"{path.name} takes {expected} input(s)")


def dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def fixed_inputs(inputs: list[dict], shapes: list[tuple[int, ...]] | None, model_path: Path, engine: str,
                 why: str) -> list[dict]:
    """The ONNX inputs with the option `input_shapes` applied; refuses dimensions still dynamic, which
    converters that bake shapes in (pnnx, tracing) cannot take."""
    if shapes:
        check_shape_count(model_path, shapes, len(inputs), engine)
        inputs = [{**d, "shape": list(s)} for d, s in zip(inputs, shapes)]
    dynamic = [d["name"] for d in inputs if None in d["shape"]]
    if dynamic:
        raise ModelError(f"engine '{engine}': {model_path.name} has dynamic dimensions in input(s) "
                         f"{', '.join(dynamic)}; {why}; hint: set the engine option input_shapes")
    return inputs
