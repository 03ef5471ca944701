#!/usr/bin/env python3
"""A batch-dynamic copy of a converted ONNX model: first dimension of every input and output named "batch".

Used by scripts/convert_face_models.py (which writes face_detection_*_batch.onnx beside each model) and runnable
on its own against a model already in assets/models/, without MediaPipe:

    python scripts/onnx_batch_dynamic.py assets/models/face_detection_short_range.onnx \
        assets/models/face_detection_short_range_batch.onnx --check

Why a copy and not the models themselves: the fixed [1,H,W,3] files are what the parity figures were measured
on and what the engines that compile for one shape (TensorRT, TVM, ncnn, MNN) take; the batch-dynamic copy is
for the engines that batch frames of several streams into one call (ONNX Runtime, OpenVINO).

What changes: the converter (scripts/tflite_to_onnx.py) writes TFLite's shapes literally, batch 1 included, in
two places that would pin the batch: Reshape targets (now 0 in the first place: "the input's own batch") and
Resize sizes (now scales, the same ratio, so the output size is the same for every batch). Everything else is
per-sample already (Conv, Pad with zero batch padding, Concat on axis 1). `--check` runs ONNX Runtime on a
batch of real-looking inputs and on each alone through the original model and requires the same numbers
(within float rounding: the batched convolutions may sum in another order).

The output is deterministic: the same input gives identical bytes.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

BATCH = "batch"


def make_batch_dynamic(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` (batch 1 throughout) with a symbolic first dimension; raises ValueError where it cannot tell."""
    shapes = _inferred_shapes(model)
    out = copy.deepcopy(model)
    graph = out.graph
    inits = {init.name: init for init in graph.initializer}
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if not dims or dims[0].dim_value != 1:
            raise ValueError(f"{value.name}: first dimension is not 1 ({[d.dim_value for d in dims]})")
        dims[0].Clear()
        dims[0].dim_param = BATCH
    del graph.value_info[:]  # inferred for batch 1; recomputed by whoever needs them
    for node in graph.node:
        if node.op_type == "Reshape":
            target = _constant(inits, node.input[1], node)
            if target[0] != 1:
                raise ValueError(f"Reshape {node.name}: target {target.tolist()} does not start with the batch")
            node.input[1] = _add_constant(graph, inits, f"{node.input[1]}/batch", np.array([0, *target[1:]], np.int64))
        elif node.op_type == "Resize":
            if len(node.input) < 4 or not node.input[3]:
                continue  # scales already: independent of the batch
            sizes = _constant(inits, node.input[3], node).astype(np.float64)
            before = shapes.get(node.input[0])
            if before is None or len(before) != len(sizes) or 0 in before:
                raise ValueError(f"Resize {node.name}: input shape unknown, cannot turn sizes into scales")
            scales = (sizes / np.array(before, np.float64)).astype(np.float32)
            node.input[2] = _add_constant(graph, inits, f"{node.name}/scales", scales)
            del node.input[3]
    _drop_unused(graph)
    onnx.checker.check_model(out, full_check=True)
    return out


def _inferred_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    inferred = shape_inference.infer_shapes(model, strict_mode=True)
    values = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}


def _constant(inits: dict, name: str, node) -> np.ndarray:
    if name not in inits:
        raise ValueError(f"{node.op_type} {node.name}: {name} is computed, not a constant")
    return numpy_helper.to_array(inits[name])


def _add_constant(graph, inits: dict, name: str, array: np.ndarray) -> str:
    while name in inits:
        name += "_"
    tensor = numpy_helper.from_array(array, name)
    graph.initializer.append(tensor)
    inits[name] = tensor
    return name


def _drop_unused(graph) -> None:
    used = {name for node in graph.node for name in node.input}
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def check_batch(original: Path, batched: Path, batch: int = 4, seed: int = 0) -> float:
    """The largest difference between the batched model on `batch` inputs and the original on each alone."""
    import onnxruntime as ort

    one = ort.InferenceSession(str(original), providers=["CPUExecutionProvider"])
    many = ort.InferenceSession(str(batched), providers=["CPUExecutionProvider"])
    spec = one.get_inputs()[0]
    rng = np.random.default_rng(seed)
    # Smooth images in the model's [-1, 1] range (noise alone leaves every score near zero).
    base = rng.uniform(-1, 1, (batch, 8, 8, spec.shape[3])).astype(np.float32)
    frames = np.stack([np.kron(b, np.ones((spec.shape[1] // 8, spec.shape[2] // 8, 1), np.float32)) for b in base])
    together = many.run(None, {spec.name: frames})
    worst = 0.0
    for i in range(batch):
        alone = one.run(None, {spec.name: frames[i:i + 1]})
        for a, b in zip(alone, together):
            if b.shape[0] != batch or a.shape[1:] != b.shape[1:]:
                raise AssertionError(f"{batched.name}: output {b.shape} for a batch of {batch}, alone {a.shape}")
            worst = max(worst, float(np.abs(a[0] - b[i]).max()))
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--check", action="store_true", help="compare batch 4 against single runs (onnxruntime)")
    args = parser.parse_args()
    batched = make_batch_dynamic(onnx.load(str(args.model)))
    onnx.save(batched, str(args.out))
    print(f"{args.out}: inputs/outputs batch-dynamic ({args.out.stat().st_size} bytes)")
    if args.check:
        worst = check_batch(args.model, args.out)
        print(f"  batch of 4 vs each alone: max |difference| {worst:.2e}")
        if worst > 1e-4:
            print("  FAILED: the batched model does not compute the same thing", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
