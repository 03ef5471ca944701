"""PyTorch: runs TorchScript (.pt, .ts) and ExportedProgram (.pt2) files; converts ONNX with onnx2torch.

An ONNX model is converted once (conversion_cache): onnx2torch turns it into an fx GraphModule, which is traced
to TorchScript on zeros of the model's input shapes, frozen, and saved with the ONNX model's inputs and outputs
(names, shapes, dtypes) inside the archive as `framegraph.json`. torch.export cannot take onnx2torch's modules
(its Reshape branches on tensor values; draft_export did not finish in 5 minutes on BlazeFace), so the cached
form is TorchScript, whose API torch 2.13 marks deprecated: those DeprecationWarnings are silenced around the
engine's own torch.jit calls (a user cannot act on them); if TorchScript goes, this path needs onnx2torch
modules with static shapes.

ONNX DepthToSpace in DCR mode (TensorFlow's, used by BlazeFace full range) is rewritten before conversion as a
channel Gather then CRD mode, the only mode onnx2torch converts. onnx2torch imports torchvision at import time
but uses it only for NonMaxSuppression and RoiAlign; where torchvision is missing or does not match torch (a CPU
torch beside PyPI's CUDA torchvision), onnx2torch is imported without it and those two ops are refused.
"""
from __future__ import annotations

import contextlib
import json
import logging
import sys
import types
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.engines import Engine, EngineOptions, Session, TensorSpec
from pipelines.errors import ModelError

from .conversion_cache import cached_conversion
from .model_io import check_input_shapes, check_shape_count, dist_version, fixed_inputs, onnx_io, spec_from_dict

log = logging.getLogger("framegraph.engines")

_META = "framegraph.json"  # the I/O description stored inside TorchScript archives made here
_CONVERTED = "model.ts"


class TorchEngine(Engine):
    """PyTorch. `device`: cpu, or cuda[:N] where torch.cuda.is_available(). `threads` sets torch.set_num_threads,
    which is process-wide, and only when given (0: torch's default). `precision`: f32 only."""

    @dataclass(frozen=True)
    class Options:
        #: One shape per input, e.g. [[1, 128, 128, 3]]: needed for a TorchScript file without `framegraph.json`
        #: (then inputs are float32 and outputs are found by one run on zeros) and for an ONNX model with dynamic
        #: dimensions (the trace fixes them).
        input_shapes: tuple[tuple[int, ...], ...] = ()

        def __post_init__(self):
            check_input_shapes(self.input_shapes)

    name = "torch"
    formats = (".pt", ".ts", ".pt2", ".onnx")
    module = "torch"
    distributions = ("torch",)
    install_hint = 'pip install "framegraph[torch]"'
    device_forms = ("cpu", "cuda[:N]")

    def devices(self) -> list[str]:
        import torch

        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

    def load(self, model_path: Path, options: EngineOptions) -> Session:
        own: TorchEngine.Options = self.checked(options)
        import torch

        shapes = [tuple(s) for s in own.input_shapes] or None
        device = str(options.device)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise self.unavailable(f"device {device!r} is not available here (torch {torch.__version__}, "
                                   "torch.cuda.is_available() is False)",
                                   "install a CUDA build of torch, or use device: cpu")
        if options.threads:
            torch.set_num_threads(options.threads)
        path = original = Path(model_path)
        suffix = path.suffix.lower()
        source = ""
        if suffix == ".onnx":
            version = dist_version("onnx2torch")
            variant = f"onnx2torch{version}" + ("-" + "_".join("x".join(map(str, s)) for s in shapes) if shapes else "")
            folder = cached_conversion(path, self.name, torch.__version__, variant,
                                       lambda model, out: _convert_onnx(model, out, shapes))
            path, source, suffix = folder / _CONVERTED, f"from {original.name} by onnx2torch {version}, ", ".ts"
        if suffix == ".pt2":
            module, inputs, outputs = _load_exported(path, device)
            kind = "ExportedProgram"
        else:
            module, inputs, outputs = _load_torchscript(path, device, shapes)
            kind = "TorchScript"
        details = f"{kind} {source}threads {torch.get_num_threads()}"
        return _TorchSession(module, original, device, inputs, outputs, details)


class _TorchSession(Session):
    def __init__(self, module, model_path: Path, device: str, inputs: list[TensorSpec],
                 outputs: list[TensorSpec] | None, details: str):
        import torch

        self._torch = torch
        self._module = module
        self._device = torch.device(device)
        if outputs is None:  # not described by the file: one run on zeros says how many and what shapes
            results = self._forward([np.zeros(s.shape, s.dtype) for s in inputs])
            outputs = [TensorSpec(f"output_{i}", r.shape, r.dtype) for i, r in enumerate(results)]
        super().__init__("torch", model_path, device, inputs, outputs, details)

    def _forward(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        torch = self._torch
        # torch.from_numpy shares the array's memory and warns on read-only arrays; those are copied.
        tensors = [torch.from_numpy(a if a.flags.writeable else a.copy()).to(self._device) for a in arrays]
        with torch.inference_mode():
            result = self._module(*tensors)
        return [t.detach().cpu().numpy() for t in _flatten(result)]

    def run(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self._forward(arrays)

    def close(self) -> None:
        self._module = None


def _flatten(result) -> list:
    if isinstance(result, Mapping):
        return list(result.values())
    if isinstance(result, (list, tuple)):
        return list(result)
    return [result]


def _load_torchscript(path: Path, device: str, shapes: list[tuple[int, ...]] | None):
    import torch

    files = {_META: ""}
    try:
        with _torchscript():
            module = torch.jit.load(str(path), map_location=device, _extra_files=files)
    except RuntimeError as exc:
        if "constants.pkl" in str(exc) or "archive" in str(exc):
            raise ModelError(f"engine 'torch': {path} is not a TorchScript archive ({exc}); hint: save the model "
                             "with torch.jit.save(torch.jit.trace(model, example), path), or as an "
                             "ExportedProgram with torch.export.save(torch.export.export(model, example), "
                             "'model.pt2')") from exc
        raise
    module.eval()
    meta = json.loads(files[_META]) if files[_META] else None
    if meta:
        inputs = [spec_from_dict(d) for d in meta["inputs"]]
        outputs = [spec_from_dict(d) for d in meta["outputs"]]
        if shapes:
            check_shape_count(path, shapes, len(inputs), "torch")
            inputs = [TensorSpec(s.name, shape, s.dtype) for s, shape in zip(inputs, shapes)]
        return module, inputs, outputs
    names = [a.name for a in module.forward.schema.arguments[1:]]  # [0] is self
    if not shapes:
        raise ModelError(f"engine 'torch': {path.name} is TorchScript without input shapes (it takes "
                         f"{', '.join(names) or 'no inputs'}); hint: set the engine option input_shapes, e.g. "
                         "[[1, 128, 128, 3]], one per input")
    check_shape_count(path, shapes, len(names), "torch")
    return module, [TensorSpec(n, s, np.dtype(np.float32)) for n, s in zip(names, shapes)], None


def _load_exported(path: Path, device: str):
    import torch

    program = torch.export.load(str(path))
    signature = program.graph_signature
    nodes = {n.name: n for n in program.graph.nodes}
    inputs = [_fake_spec(name, nodes[name].meta.get("val")) for name in signature.user_inputs]
    output_node = next(n for n in program.graph.nodes if n.op == "output")
    values = [getattr(a, "meta", {}).get("val") for a in output_node.args[0]]
    by_name = dict(zip(signature.user_outputs, values[-len(signature.user_outputs):])) if values else {}
    outputs = [_fake_spec(name, by_name.get(name)) for name in signature.user_outputs]
    module = program.module()
    if device != "cpu":
        module = module.to(device)
    return module, inputs, outputs


def _fake_spec(name: str, value) -> TensorSpec:
    if value is None or not hasattr(value, "shape"):
        return TensorSpec(name, (), np.dtype(np.float32))
    shape = tuple(int(d) if isinstance(d, int) or str(d).isdigit() else None for d in value.shape)
    return TensorSpec(name, shape, np.dtype(str(value.dtype).removeprefix("torch.")))


def _convert_onnx(model_path: Path, out: Path, shapes: list[tuple[int, ...]] | None) -> None:
    import onnx
    import torch

    onnx2torch = _import_onnx2torch()
    model = onnx.load(str(model_path))
    inputs, outputs = onnx_io(model)
    inputs = fixed_inputs(inputs, shapes, model_path, "torch", "tracing needs fixed ones")
    graph = onnx2torch.convert(_dcr_to_crd(model, model_path)).eval()
    example = tuple(torch.zeros(d["shape"], dtype=getattr(torch, d["dtype"])) for d in inputs)
    with _torchscript(), torch.no_grad():
        # onnx2torch's Reshape/Pad read shapes as Python values: right for the fixed shapes traced here.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.freeze(torch.jit.trace(graph, example, check_trace=False).eval())
        got = _flatten(traced(*example))
    if len(got) != len(outputs):
        raise ModelError(f"engine 'torch': converted {model_path.name} returns {len(got)} outputs, the ONNX model "
                         f"declares {len(outputs)}")
    outputs = [{**d, "shape": list(t.shape)} for d, t in zip(outputs, got)]
    meta = {"source": model_path.name, "converter": f"onnx2torch {dist_version('onnx2torch')}",
            "inputs": inputs, "outputs": outputs}
    with _torchscript():
        torch.jit.save(traced, str(out / _CONVERTED), _extra_files={_META: json.dumps(meta)})


@contextlib.contextmanager
def _torchscript() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated", DeprecationWarning)
        yield


def _dcr_to_crd(model, model_path: Path):
    """DepthToSpace mode DCR as Gather(channels) then mode CRD: DCR input channel (i*b + j)*C' + c is CRD
    channel c*b*b + i*b + j."""
    import onnx
    from onnx import helper, numpy_helper

    targets = [n for n in model.graph.node if n.op_type == "DepthToSpace" and _attr(n, "mode", b"DCR") != b"CRD"]
    if not targets:
        return model
    inferred = onnx.shape_inference.infer_shapes(model)
    channels = {}
    for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        dims = v.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].dim_value > 0:
            channels[v.name] = dims[1].dim_value
    for k, node in enumerate(targets):
        block = int(_attr(node, "blocksize", 0))
        c = channels.get(node.input[0])
        if not c or not block or c % (block * block):
            raise ModelError(f"engine 'torch': {model_path.name}: DepthToSpace {node.name!r} (mode DCR): channel "
                             f"count of its input is not known statically (got {c}); onnx2torch converts mode CRD "
                             "only")
        bb = block * block
        perm = np.array([(i % bb) * (c // bb) + i // bb for i in range(c)], np.int64)
        index_name, gathered = f"framegraph_dcr_index_{k}", f"{node.input[0]}__framegraph_crd_{k}"
        model.graph.initializer.append(numpy_helper.from_array(perm, index_name))
        position = list(model.graph.node).index(node)
        model.graph.node.insert(position, helper.make_node("Gather", [node.input[0], index_name], [gathered],
                                                           axis=1, name=f"{node.name}__framegraph_gather"))
        node.input[0] = gathered
        for a in node.attribute:
            if a.name == "mode":
                a.s = b"CRD"
    return model


def _attr(node, name: str, default):
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)




def _import_onnx2torch():
    if "onnx2torch" in sys.modules:
        return sys.modules["onnx2torch"]
    try:
        import torchvision  # noqa: F401  (onnx2torch's NonMaxSuppression and RoiAlign converters use it)
    except Exception as exc:  # noqa: BLE001  missing, or built for another torch (its C ops fail to register)
        reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        log.info("torchvision is unusable here (%s); importing onnx2torch without it (NonMaxSuppression and "
                 "RoiAlign cannot be converted)", reason)
        stubs = {name: _Unusable(name, reason) for name in ("torchvision", "torchvision.ops")}
        saved = {name: sys.modules.get(name) for name in stubs}
        sys.modules.update(stubs)
        try:
            import onnx2torch
        finally:
            for name, previous in saved.items():
                if sys.modules.get(name) is stubs[name]:
                    if previous is None:
                        del sys.modules[name]
                    else:
                        sys.modules[name] = previous
        return onnx2torch
    import onnx2torch

    return onnx2torch


class _Unusable(types.ModuleType):
    """Stands in for torchvision while onnx2torch imports: any use says why it is missing."""

    def __init__(self, name: str, reason: str):
        super().__init__(name)
        self._reason = reason

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Unusable(f"{self.__name__}.{attr}", self._reason)

    def __call__(self, *args, **kwargs):
        raise ModelError(f"engine 'torch': {self.__name__} is needed to convert this model but torchvision is "
                         f"unusable here ({self._reason}); hint: install the torchvision build that matches torch")
