"""ncnn: runs .param (+ .bin beside it) files; converts ONNX with pnnx. CPU, or Vulkan where a GPU is present.

An ONNX model is converted once (conversion_cache) by the `pnnx` binary from the pnnx wheel, run directly (the
`pnnx` Python package and console script import torch; the binary needs neither it nor a network), with fp32
weights (`fp16=0`: pnnx's default fp16 weights moved BlazeFace regressors by 0.04). pnnx leaves ONNX
DepthToSpace unconverted; it becomes ncnn's PixelShuffle (mode 1 is DCR, 0 is CRD), with the block size and mode
pnnx recorded in its own .pnnx.param. The entry keeps `model.ncnn.param`, `model.ncnn.bin` and
`model.ncnn.io.json`: the ONNX model's input and output names, shapes and dtypes, and the ncnn blob of each.
pnnx releases before 20260409 convert BlazeFace short range wrongly without a word (a padding flag of its first
convolution: logits off by 100), so where onnxruntime is installed a new conversion is run once on random inputs
beside it and refused if they disagree.

ncnn has no batch axis: a Mat is (c, h, w) and the array is passed as it is, less its batch axis of 1 (pnnx
puts the model's own layout change, NHWC to ncnn's CHW, inside the .param). The session takes what ONNX Runtime
takes (NHWC [1,H,W,3] for BlazeFace) and returns the ONNX model's outputs in its order and shapes.
"""
from __future__ import annotations

import ctypes
import importlib.util
import json
import logging
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.engines import Engine, EngineOptions, Session, TensorSpec
from pipelines.errors import ModelError

from .conversion_cache import cached_conversion
from .model_io import check_input_shapes, check_shape_count, dist_version, fixed_inputs, onnx_io, spec_from_dict

log = logging.getLogger("framegraph.engines")

_PNNX_TYPES = {"float32": "f32", "float16": "f16", "float64": "f64", "int64": "i64", "int32": "i32",
               "int16": "i16", "int8": "i8", "uint8": "u8", "bool": "b"}
_DEPTH_TO_SPACE_MODES = {"DCR": 1, "CRD": 0}  # ncnn PixelShuffle param 1
_REDUCED_PRECISION = ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage",
                      "use_bf16_packed")


class NcnnEngine(Engine):
    """ncnn. `device`: cpu, or vulkan (gpu: the same) where ncnn finds a Vulkan GPU. `threads` sets
    opt.num_threads (0: ncnn's default). `precision`: f32 (fp16/bf16 storage and arithmetic off), or f16 (ncnn's
    defaults: fp16 where the hardware has it)."""

    @dataclass(frozen=True)
    class Options:
        #: One shape per input with its batch axis of 1, e.g. [[1, 128, 128, 3]]: needed for a .param without
        #: `<name>.io.json` beside it (then inputs are float32, outputs are named after their blobs and get their
        #: shapes from one run on zeros) and for an ONNX model with dynamic dimensions.
        input_shapes: tuple[tuple[int, ...], ...] = ()

        def __post_init__(self):
            check_input_shapes(self.input_shapes)

    name = "ncnn"
    formats = (".param", ".onnx")
    module = "ncnn"
    distributions = ("ncnn",)
    install_hint = ('pip install "framegraph[ncnn]" (converting ONNX also needs the pnnx converter: '
                    'pip install --no-deps pnnx)')
    device_forms = ("cpu", "vulkan", "gpu")
    precisions = ("f32", "f16")

    def devices(self) -> list[str]:
        import ncnn

        return ["cpu"] + (["vulkan"] if _vulkan_gpus(ncnn) else [])

    def load(self, model_path: Path, options: EngineOptions) -> Session:
        own: NcnnEngine.Options = self.checked(options)
        import ncnn

        shapes = [tuple(s) for s in own.input_shapes] or None
        device = options.device.kind
        if device != "cpu" and not _vulkan_gpus(ncnn):
            raise self.unavailable(f"device '{device}' is not available here (ncnn finds no Vulkan GPU)",
                                   "install the GPU's Vulkan driver (libvulkan.so.1), or use device: cpu")
        original = path = Path(model_path)
        source = ""
        if path.suffix.lower() == ".onnx":
            exe = _pnnx_executable()
            if exe is None:
                raise self.unavailable(f"converting {path.name} needs the pnnx converter, which is not installed",
                                       "pip install --no-deps pnnx (the converter binary; torch is not needed "
                                       "for ONNX), or convert the model to .param/.bin yourself")
            pnnx_version = dist_version("pnnx")
            variant = f"pnnx{pnnx_version}" + ("-" + "_".join("x".join(map(str, s)) for s in shapes) if shapes else "")
            folder = cached_conversion(path, self.name, ncnn.__version__, variant,
                                       lambda model, out: _convert_onnx(exe, model, out, shapes))
            path, source = folder / "model.ncnn.param", f"from {original.name} by pnnx {pnnx_version}, "
        weights = path.with_suffix(".bin")
        if not weights.is_file():
            raise ModelError(f"engine 'ncnn': {path.name} needs its weights beside it as {weights.name}, which is "
                             "missing; hint: keep the .param and .bin of a model together")
        _check_layers(ncnn, path)

        net = ncnn.Net()
        opt = net.opt
        opt.use_vulkan_compute = device != "cpu"
        if options.threads:
            opt.num_threads = options.threads
        if options.precision == "f32":
            for flag in _REDUCED_PRECISION:
                if hasattr(opt, flag):  # use_bf16_packed is newer than 2024
                    setattr(opt, flag, False)
        if net.load_param(str(path)) != 0 or net.load_model(str(weights)) != 0:
            raise ModelError(f"engine 'ncnn' {ncnn.__version__}: could not load {path.name} / {weights.name} "
                             "(ncnn printed the reason to stderr)")
        meta = _read_meta(path)
        details = (f"{source}{'vulkan' if opt.use_vulkan_compute else 'cpu'}, precision {options.precision}, "
                   f"threads {opt.num_threads}")
        return _NcnnSession(ncnn, net, original, device, meta, shapes, details)


class _NcnnSession(Session):
    def __init__(self, ncnn, net, model_path: Path, device: str, meta: Mapping | None,
                 shapes: list[tuple[int, ...]] | None, details: str):
        self._ncnn = ncnn
        self._net = net
        if meta:
            inputs = [spec_from_dict(d) for d in meta["inputs"]]
            if shapes and shapes != [s.shape for s in inputs]:
                # pnnx fixes shapes in the .param (Reshape sizes): another input size needs another conversion.
                raise ModelError(f"engine 'ncnn': the option input_shapes {[list(s) for s in shapes]} differ from "
                                 f"the shapes {model_path.name} was converted for ({', '.join(map(str, inputs))}); "
                                 "hint: convert it again from the source model with these shapes")
            self._in_blobs = [d["blob"] for d in meta["inputs"]]
            self._out_blobs = [d["blob"] for d in meta["outputs"]]
            outputs = [spec_from_dict(d) for d in meta["outputs"]]
        else:
            self._in_blobs = list(net.input_names())
            self._out_blobs = _ordered(list(net.output_names()))
            if not shapes:
                raise ModelError(f"engine 'ncnn': {model_path.name} does not say its input shapes (no "
                                 f"{model_path.with_suffix('.io.json').name} beside it; inputs: "
                                 f"{', '.join(self._in_blobs)}); hint: set the engine option input_shapes, e.g. "
                                 "[[1, 128, 128, 3]], one per input, batch axis first")
            check_shape_count(model_path, shapes, len(self._in_blobs), "ncnn")
            inputs = [TensorSpec(b, s, np.dtype(np.float32)) for b, s in zip(self._in_blobs, shapes)]
            outputs = None
        for spec in inputs:
            if not spec.shape or spec.shape[0] != 1:
                raise ModelError(f"engine 'ncnn': input {spec} of {model_path.name} must have a batch axis of 1 "
                                 "(ncnn has no batch axis; it is dropped at the boundary)")
        if outputs is None:  # not described by a .io.json: one run on zeros says the outputs' shapes
            self._out_shapes = [None] * len(self._out_blobs)
            results = self._forward([np.zeros(s.shape, s.dtype) for s in inputs])
            outputs = [TensorSpec(b, r.shape, r.dtype) for b, r in zip(self._out_blobs, results)]
        self._out_shapes = [o.shape if None not in o.shape else None for o in outputs]
        super().__init__("ncnn", model_path, device, inputs, outputs, details)

    def _forward(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        ncnn = self._ncnn
        with self._net.create_extractor() as ex:
            for blob, array in zip(self._in_blobs, arrays):
                # ncnn.Mat wraps the array's memory; the clone keeps in-place layers off the caller's array.
                ex.input(blob, ncnn.Mat(np.ascontiguousarray(array[0], dtype=np.float32)).clone())
            results = []
            for blob, shape in zip(self._out_blobs, self._out_shapes):
                ret, mat = ex.extract(blob)
                if ret != 0:
                    raise ModelError(f"engine 'ncnn': extracting output blob {blob!r} failed (code {ret})")
                array = np.array(mat)  # a copy: the Mat's memory goes back to ncnn's allocator
                results.append(array.reshape(shape) if shape is not None else array[None])
        return results

    def run(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self._forward(arrays)

    def close(self) -> None:
        if self._net is not None:
            self._net.clear()
        self._net = None


def _convert_onnx(exe: Path, model_path: Path, out: Path, shapes: list[tuple[int, ...]] | None) -> None:
    import onnx

    inputs, outputs = onnx_io(onnx.load(str(model_path), load_external_data=False))
    inputs = fixed_inputs(inputs, shapes, model_path, "ncnn", "pnnx needs fixed ones")
    shutil.copyfile(model_path, out / "model.onnx")  # pnnx writes a .pnnxsim.onnx beside its input
    shape_arg = ",".join("[" + ",".join(map(str, d["shape"])) + "]" + _PNNX_TYPES.get(d["dtype"], "f32")
                         for d in inputs)
    names = {"ncnnparam": "model.ncnn.param", "ncnnbin": "model.ncnn.bin", "ncnnpy": "model_ncnn.py",
             "pnnxparam": "model.pnnx.param", "pnnxbin": "model.pnnx.bin", "pnnxpy": "model_pnnx.py",
             "pnnxonnx": "model.pnnx.onnx"}
    command = [str(exe), "model.onnx", f"inputshape={shape_arg}", "fp16=0", *(f"{k}={v}" for k, v in names.items())]
    done = subprocess.run(command, check=False, cwd=out, capture_output=True, text=True, timeout=600)
    param = out / "model.ncnn.param"
    if done.returncode != 0 or not param.is_file():
        tail = " ".join((done.stdout + done.stderr).split()[-60:])
        raise ModelError(f"engine 'ncnn': pnnx could not convert {model_path.name} (exit {done.returncode}): {tail}")
    layers = _pnnx_layers(out / "model.pnnx.param")
    _rewrite_depth_to_space(param, layers, model_path)
    pnnx_in = [shape for kind, _, _, shape in layers if kind == "pnnx.Input"]
    pnnx_out = [shape for kind, _, _, shape in layers if kind == "pnnx.Output"]
    if len(pnnx_in) != len(inputs) or len(pnnx_out) != len(outputs):
        raise ModelError(f"engine 'ncnn': pnnx made {len(pnnx_in)} input(s) and {len(pnnx_out)} output(s) from "
                         f"{model_path.name}, which has {len(inputs)} and {len(outputs)}")
    for d, shape in zip(outputs, pnnx_out):
        if any(w is not None and w != g for w, g in zip(d["shape"], shape)) or len(d["shape"]) != len(shape):
            raise ModelError(f"engine 'ncnn': pnnx output {shape} does not match {d['name']} {d['shape']} of "
                             f"{model_path.name}")
        d["shape"] = list(shape)
    meta = {"source": model_path.name, "converter": f"pnnx {dist_version('pnnx')}",
            "inputs": [{**d, "blob": f"in{i}"} for i, d in enumerate(inputs)],
            "outputs": [{**d, "blob": f"out{i}"} for i, d in enumerate(outputs)]}
    (out / "model.ncnn.io.json").write_text(json.dumps(meta, indent=1))
    for leftover in out.iterdir():
        if leftover.name not in ("model.ncnn.param", "model.ncnn.bin", "model.ncnn.io.json"):
            leftover.unlink()
    _check_with_onnxruntime(model_path, param, meta)


def _check_with_onnxruntime(model_path: Path, param: Path, meta: dict) -> None:
    if importlib.util.find_spec("onnxruntime") is None:
        log.info("onnxruntime is not installed: the ncnn conversion of %s is not checked against it", model_path.name)
        return
    if not all(np.issubdtype(np.dtype(d["dtype"]), np.floating) for d in meta["inputs"]):
        return
    import ncnn
    import onnxruntime as ort

    _check_layers(ncnn, param)
    rng = np.random.default_rng(0)
    arrays = [rng.uniform(-1, 1, d["shape"]).astype(d["dtype"]) for d in meta["inputs"]]
    want = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"]).run(
        [d["name"] for d in meta["outputs"]], {d["name"]: a for d, a in zip(meta["inputs"], arrays)})
    net = ncnn.Net()
    for flag in _REDUCED_PRECISION:
        if hasattr(net.opt, flag):
            setattr(net.opt, flag, False)
    net.load_param(str(param))
    net.load_model(str(param.with_suffix(".bin")))
    got = _NcnnSession(ncnn, net, model_path, "cpu", meta, None, "").run(arrays)
    for d, g, w in zip(meta["outputs"], got, want):
        error = float(np.abs(g.astype(np.float64) - w).max())
        if error > 1e-3 * max(1.0, float(np.abs(w).max())):
            raise ModelError(f"engine 'ncnn': pnnx {dist_version('pnnx')} converted {model_path.name} wrongly: "
                             f"output {d['name']} differs from ONNX Runtime's by up to {error:.3g} on random inputs; "
                             "hint: pip install -U --no-deps pnnx (20260409 or newer)")


def _pnnx_layers(path: Path) -> list[tuple[str, str, dict, tuple[int, ...] | None]]:
    """(type, name, params, shape of its first operand) per layer of a .pnnx.param."""
    layers = []
    for line in path.read_text().splitlines()[2:]:
        parts = line.split()
        if len(parts) < 4:
            continue
        params = dict(p.split("=", 1) for p in parts[4:] if "=" in p and p[0] not in "#$@")
        shape = next((_shape(p) for p in parts if p.startswith("#")), None)
        layers.append((parts[0], parts[1], params, shape))
    return layers


def _shape(annotation: str) -> tuple[int, ...] | None:
    match = re.match(r"#[^=]+=\(([^)]*)\)", annotation)
    if not match:
        return None
    return tuple(int(d) if d.strip().isdigit() else None for d in match.group(1).split(",") if d.strip())


def _rewrite_depth_to_space(param: Path, layers: list, model_path: Path) -> None:
    wanted = {name: params for kind, name, params, _ in layers if kind == "DepthToSpace"}
    if not wanted:
        return
    lines = param.read_text().splitlines()
    for i, line in enumerate(lines):
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "DepthToSpace":
            params = wanted.get(parts[1], {})
            mode = params.get("mode", "DCR").strip("'\"")
            if "blocksize" not in params or mode not in _DEPTH_TO_SPACE_MODES:
                raise ModelError(f"engine 'ncnn': {model_path.name}: DepthToSpace {parts[1]} ({params}) has no ncnn "
                                 "equivalent")
            blobs = 4 + int(parts[2]) + int(parts[3])
            lines[i] = " ".join(["PixelShuffle", *parts[1:blobs], f"0={int(params['blocksize'])}",
                                 f"1={_DEPTH_TO_SPACE_MODES[mode]}"])
    param.write_text("\n".join(lines) + "\n")


def _check_layers(ncnn, param: Path) -> None:
    """Name the layer types this ncnn cannot create (load_param only prints them)."""
    unknown = set()
    for line in param.read_text().splitlines()[2:]:
        parts = line.split()
        if parts and ncnn.layer_to_index(parts[0]) < 0:
            unknown.add(parts[0])
    if unknown:
        raise ModelError(f"engine 'ncnn' {ncnn.__version__}: {param.name} uses layer types ncnn does not have: "
                         f"{', '.join(sorted(unknown))}; hint: register them as custom layers, or convert the model "
                         "without them")


def _read_meta(param: Path) -> dict | None:
    meta = param.with_suffix(".io.json")
    return json.loads(meta.read_text()) if meta.is_file() else None


def _ordered(names: list[str]) -> list[str]:
    """pnnx names outputs out0, out1, ... in the source model's order; ncnn lists them as they are produced."""
    if names and all(re.fullmatch(r"out\d+", n) for n in names):
        return sorted(names, key=lambda n: int(n[3:]))
    return names




def _pnnx_executable() -> Path | None:
    """The converter binary inside the pnnx wheel, found without importing pnnx (which imports torch)."""
    spec = importlib.util.find_spec("pnnx")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        for name in ("pnnx", "pnnx.exe"):
            if (Path(folder) / name).is_file():
                return Path(folder) / name
    return None


def _vulkan_gpus(ncnn) -> int:
    # Without a Vulkan loader ncnn prints a dlopen error per attempt; don't ask it then.
    try:
        ctypes.CDLL("libvulkan.so.1")
    except OSError:
        return 0
    return ncnn.get_gpu_count()
