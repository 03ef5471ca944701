"""TensorRT: an engine built from the ONNX model at first use, cached, and run on an NVIDIA GPU.

The build (parse the ONNX file, optimise for this GPU, serialize) takes seconds to minutes, so the plan file is
kept by `cached_conversion`, keyed by the model's hash, the TensorRT version, the precision, the workspace
limit and the GPU (name and compute capability): a plan only runs on the TensorRT and the GPU model that made
it. Later loads only deserialize it.

Memory moves through device buffers allocated once per session and pinned host staging buffers, with
`execute_async_v3` on the session's own CUDA stream. The buffers come from cuda-python (`cuda.bindings`, or the
older `cuda.cudart`) or, where that is missing, from PyTorch's CUDA tensors.

Precision: f32 (the default) builds TensorRT's default network. f16 sets `BuilderFlag.FP16` on TensorRT 10 and
older; TensorRT 11 removed that flag (every network is strongly typed), so there the ONNX model is first turned
into a float16 one with float32 inputs and outputs (NVIDIA ModelOpt's AutoCast, or onnxconverter-common), which
TensorRT then builds as it is.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from pipelines.engines import Engine, EngineOptions, Session, TensorSpec
from pipelines.errors import ModelError

from .conversion_cache import cached_conversion

log = logging.getLogger("framegraph.engines")

_ENGINE_FILE = "model.engine"
_IO_FILE = "io.json"


class TensorRtEngine(Engine):
    """TensorRT, on NVIDIA GPUs only: `device` is cuda (GPU 0, the default) or cuda:N (gpu[:N] reads the same).
    `threads` does not apply (0 or any value). `precision`: f32 or f16."""

    @dataclass(frozen=True)
    class Options:
        #: The builder's scratch memory limit, in MiB.
        workspace_mb: int = 1024
        #: 0-5 (default: TensorRT's, 3): higher builds longer and may find faster kernels.
        builder_optimization_level: int | None = None
        #: {input name: [dims]} for inputs with dynamic dimensions; the engine is built for exactly those.
        input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
        #: What allocates and copies device memory: auto (cuda-python, else PyTorch), cuda-python or torch.
        cuda_api: Literal["auto", "cuda-python", "torch"] = "auto"
        #: TensorRT's INFO messages in the log.
        verbose: bool = False

        def __post_init__(self):
            if self.workspace_mb < 1:
                raise ValueError(f"workspace_mb must be >= 1, got {self.workspace_mb}")
            level = self.builder_optimization_level
            if level is not None and not 0 <= level <= 5:
                raise ValueError(f"builder_optimization_level must be 0-5, got {level}")
            shapes = {}
            for name, dims in self.input_shapes.items():
                if (not isinstance(dims, (list, tuple)) or not dims
                        or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims)):
                    raise ValueError(f"input_shapes: {name}: expected a shape of positive ints (e.g. [1, 128, 128, "
                                     f"3]), got {dims!r}")
                shapes[str(name)] = tuple(dims)
            object.__setattr__(self, "input_shapes", shapes)

    name = "tensorrt"
    formats = (".onnx",)
    module = "tensorrt"
    distributions = ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11", "tensorrt-cu13-bindings",
                     "tensorrt-cu12-bindings")
    install_hint = 'pip install "framegraph[tensorrt]"'
    device_forms = ("cuda[:N]", "gpu[:N]")
    default_device = "cuda"
    precisions = ("f32", "f16")

    def is_installed(self) -> bool:
        # Without importing anything: the tensorrt bindings, and something that can move memory to the GPU.
        return _has_module("tensorrt") and (_cuda_python_module() is not None or _has_module("torch"))

    def devices(self) -> list[str]:
        try:
            api = _CudaApi.create("auto")
        except ModelError:
            return []
        count = api.device_count()
        return ["cuda"] + [f"cuda:{i}" for i in range(count)] if count > 1 else ["cuda"] if count else []

    def load(self, model_path: Path, options: EngineOptions) -> Session:
        own: TensorRtEngine.Options = self.checked(options)
        index = options.device.index or 0
        api = _CudaApi.create(own.cuda_api)
        count = api.device_count()
        if index >= count:
            raise self.unavailable(f"device '{options.device}' asked for, but this machine has "
                                   f"{count or 'no'} CUDA GPU{'s' if count != 1 else ''}",
                                   "check nvidia-smi and the driver, or run on onnxruntime/openvino on the CPU")
        api.set_device(index)
        gpu_name, (major, minor) = api.device_name(index), api.capability(index)
        trt = importlib.import_module("tensorrt")
        workspace_mb, level, shapes = own.workspace_mb, own.builder_optimization_level, dict(own.input_shapes)
        variant = "-".join([options.precision, f"sm{major}{minor}", _slug(gpu_name), f"ws{workspace_mb}"]
                           + ([f"O{int(level)}"] if level is not None else [])
                           + ([_slug(json.dumps(shapes, sort_keys=True))] if shapes else []))
        logger = _logger(trt, own.verbose)

        def build(model: Path, out: Path) -> None:
            _build(trt, logger, model, out, options.precision, workspace_mb, level, shapes)

        folder = cached_conversion(Path(model_path), "tensorrt", trt.__version__, variant, build)
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine((folder / _ENGINE_FILE).read_bytes())
        if engine is None:
            raise ModelError(f"engine 'tensorrt': the cached plan {folder / _ENGINE_FILE} could not be deserialized "
                             "by this TensorRT on this GPU; hint: delete that folder to rebuild it")
        io = json.loads((folder / _IO_FILE).read_text())
        details = (f"TensorRT {trt.__version__}, {options.precision}, {gpu_name} (sm_{major}{minor}), "
                   f"{api.name} buffers, plan {folder}")
        return _TrtSession(trt, api, (logger, runtime, engine), io, Path(model_path), index, details)


def _build(trt, logger, model: Path, out: Path, precision: str, workspace_mb: int, level, shapes: dict) -> None:
    """Parse `model`, build a serialized engine for the current GPU, write it and the I/O order to `out`."""
    builder = trt.Builder(logger)
    flags = 0
    major = int(trt.__version__.split(".")[0])
    if major < 10:  # explicit batch is the only mode from TensorRT 10 on, and the flag is gone in 11
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if level is not None:
        config.builder_optimization_level = int(level)
    source = model.read_bytes()
    if precision == "f16":
        if hasattr(trt.BuilderFlag, "FP16"):  # TensorRT <= 10: weakly typed, the builder picks fp16 kernels
            config.set_flag(trt.BuilderFlag.FP16)
        else:  # TensorRT 11+: strongly typed; the types come from the model itself
            source = _fp16_onnx(model)
    if not parser.parse(source, str(model)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"engine 'tensorrt': TensorRT's ONNX parser rejected {model.name}: {errors}")
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    outputs = [network.get_output(i) for i in range(network.num_outputs)]
    dynamic = {t.name: tuple(t.shape) for t in inputs if any(d < 0 for d in t.shape)}
    if dynamic:
        missing = sorted(set(dynamic) - set(shapes))
        if missing:
            raise ModelError(f"engine 'tensorrt': {model.name} has dynamic input dimensions "
                             f"({', '.join(f'{n} {list(dynamic[n])}' for n in missing)}); hint: give the shape it "
                             "will run at in the engine option input_shapes: {NAME: [1, 128, 128, 3]}")
        profile = builder.create_optimization_profile()
        for name, shape in shapes.items():
            profile.set_shape(name, shape, shape, shape)
        config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ModelError(f"engine 'tensorrt': TensorRT could not build an engine for {model.name} "
                         "(its messages are in the log above; the engine option verbose: true shows more)")
    (out / _ENGINE_FILE).write_bytes(bytes(plan))
    # The engine lists its I/O tensors in its own order; keep the ONNX graph's, which the graph relies on.
    (out / _IO_FILE).write_text(json.dumps({"inputs": [t.name for t in inputs],
                                            "outputs": [t.name for t in outputs],
                                            "shapes": {k: list(v) for k, v in shapes.items()}}))


def _fp16_onnx(model: Path) -> bytes:
    """The ONNX model with float16 weights and arithmetic, float32 inputs and outputs (for TensorRT 11+)."""
    if _has_module("modelopt"):
        from modelopt.onnx.autocast import convert_to_mixed_precision

        converted = convert_to_mixed_precision(onnx_path=str(model), low_precision_type="fp16", keep_io_types=True)
        return converted.SerializeToString()
    if _has_module("onnxconverter_common"):
        import onnx
        from onnxconverter_common import float16

        return float16.convert_float_to_float16(onnx.load(str(model)), keep_io_types=True).SerializeToString()
    raise ModelError("engine 'tensorrt': precision f16 on TensorRT 11+ needs the model converted to float16 first, "
                     "and neither nvidia-modelopt nor onnxconverter-common is installed; hint: pip install "
                     "\"nvidia-modelopt[onnx]\" (or onnxconverter-common), or use precision: f32")


class _TrtSession(Session):
    def __init__(self, trt, api: _CudaApi, owners: tuple, io: dict, model_path: Path, index: int, details: str):
        # owners: (logger, runtime, engine); TensorRT does not keep them alive itself, and the engine must
        # outlive the context, the runtime the engine, and the logger all of them.
        self._api, self._owners, self._index = api, owners, index
        engine = owners[2]
        self._context = context = engine.create_execution_context()
        for name, shape in io.get("shapes", {}).items():
            context.set_input_shape(name, tuple(shape))
        self._stream = api.stream()
        specs, self._buffers = {}, {}
        for name in io["inputs"] + io["outputs"]:
            shape = tuple(context.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            declared = tuple(None if d < 0 else int(d) for d in engine.get_tensor_shape(name))
            specs[name] = TensorSpec(name, declared, dtype)
            self._buffers[name] = api.buffers(shape, dtype)
            context.set_tensor_address(name, self._buffers[name].device)
        super().__init__("tensorrt", model_path, f"cuda:{index}", [specs[n] for n in io["inputs"]],
                         [specs[n] for n in io["outputs"]], details)
        self._in_names, self._out_names = list(io["inputs"]), list(io["outputs"])

    def run(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        api, stream = self._api, self._stream
        if self._index:
            api.set_device(self._index)  # the CUDA device is per thread; open() may have run on another one
        for name, array in zip(self._in_names, arrays):
            buffer = self._buffers[name]
            if array.shape != buffer.host.shape:
                raise ModelError(f"engine 'tensorrt': input {name} was built for {list(buffer.host.shape)}, "
                                 f"got {list(array.shape)}; hint: set the engine option input_shapes to the fed shape")
            np.copyto(buffer.host, array, casting="no")
            api.to_device(buffer, stream)
        if not self._context.execute_async_v3(api.stream_handle(stream)):
            raise RuntimeError("engine 'tensorrt': execute_async_v3 failed (see TensorRT's message in the log)")
        for name in self._out_names:
            api.to_host(self._buffers[name], stream)
        api.synchronize(stream)
        # Copies: the staging buffers are overwritten by the next run while downstream nodes hold these arrays.
        return [self._buffers[name].host.copy() for name in self._out_names]

    def close(self) -> None:
        if self._context is None:
            return
        self._api.synchronize(self._stream)
        for buffer in self._buffers.values():
            self._api.free(buffer)
        self._api.destroy_stream(self._stream)
        self._buffers, self._context = {}, None
        self._owners = None


class _Buffer:
    """One I/O tensor: device memory plus a pinned host array of the same shape (the staging area)."""

    def __init__(self, device: int, host: np.ndarray, keep=None):
        self.device, self.host, self.keep = device, host, keep  # keep: objects that own the memory


class _CudaApi:
    """The few CUDA runtime calls the session needs, from cuda-python or from PyTorch."""

    name = ""

    @staticmethod
    def create(which: str) -> _CudaApi:
        if which in ("auto", "cuda-python") and _cuda_python_module() is not None:
            return _CudaPython()
        if which in ("auto", "torch") and _has_module("torch"):
            return _TorchCuda()
        wanted = {"auto": "cuda-python or PyTorch", "cuda-python": "cuda-python", "torch": "PyTorch"}[which]
        raise ModelError(f"engine 'tensorrt': device buffers need {wanted}, which is not installed; hint: "
                         "pip install cuda-python (or a CUDA build of torch)")


class _CudaPython(_CudaApi):
    name = "cuda-python"

    def __init__(self):
        self.rt = importlib.import_module(_cuda_python_module())
        self._h2d = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._d2h = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost

    def _call(self, result, what: str):
        err, *values = result if isinstance(result, tuple) else (result,)
        if err != self.rt.cudaError_t.cudaSuccess:
            raise RuntimeError(f"engine 'tensorrt': CUDA {what} failed: {getattr(err, 'name', err)}")
        return values[0] if len(values) == 1 else values

    def device_count(self) -> int:
        err, count = self.rt.cudaGetDeviceCount()
        return int(count) if err == self.rt.cudaError_t.cudaSuccess else 0  # no driver / no GPU: none

    def set_device(self, index: int) -> None:
        self._call(self.rt.cudaSetDevice(index), "cudaSetDevice")

    def device_name(self, index: int) -> str:
        name = self._call(self.rt.cudaGetDeviceProperties(index), "cudaGetDeviceProperties").name
        return (name.split(b"\0", 1)[0].decode() if isinstance(name, bytes) else str(name)).strip()

    def capability(self, index: int) -> tuple[int, int]:
        prop = self._call(self.rt.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
        return int(prop.major), int(prop.minor)

    def stream(self):
        return self._call(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    def stream_handle(self, stream) -> int:
        return int(stream)

    def buffers(self, shape: tuple[int, ...], dtype: np.dtype) -> _Buffer:
        nbytes = max(1, int(np.prod(shape)) * dtype.itemsize)
        device = int(self._call(self.rt.cudaMalloc(nbytes), "cudaMalloc"))
        pinned = int(self._call(self.rt.cudaMallocHost(nbytes), "cudaMallocHost"))
        import ctypes

        raw = (ctypes.c_byte * nbytes).from_address(pinned)
        host = np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape))).reshape(shape)
        return _Buffer(device, host, keep=(pinned, raw))

    def to_device(self, buffer: _Buffer, stream) -> None:
        self._call(self.rt.cudaMemcpyAsync(buffer.device, buffer.host.ctypes.data, buffer.host.nbytes,
                                           self._h2d, stream), "cudaMemcpyAsync (to the GPU)")

    def to_host(self, buffer: _Buffer, stream) -> None:
        self._call(self.rt.cudaMemcpyAsync(buffer.host.ctypes.data, buffer.device, buffer.host.nbytes,
                                           self._d2h, stream), "cudaMemcpyAsync (from the GPU)")

    def synchronize(self, stream) -> None:
        self._call(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def free(self, buffer: _Buffer) -> None:
        self._call(self.rt.cudaFree(buffer.device), "cudaFree")
        self._call(self.rt.cudaFreeHost(buffer.keep[0]), "cudaFreeHost")
        buffer.host = buffer.keep = None

    def destroy_stream(self, stream) -> None:
        self._call(self.rt.cudaStreamDestroy(stream), "cudaStreamDestroy")


class _TorchCuda(_CudaApi):
    name = "torch"

    def __init__(self):
        import torch

        self.torch = torch

    def device_count(self) -> int:
        return self.torch.cuda.device_count() if self.torch.cuda.is_available() else 0

    def set_device(self, index: int) -> None:
        self.torch.cuda.set_device(index)

    def device_name(self, index: int) -> str:
        return self.torch.cuda.get_device_name(index)

    def capability(self, index: int) -> tuple[int, int]:
        return tuple(self.torch.cuda.get_device_capability(index))

    def stream(self):
        return self.torch.cuda.Stream()

    def stream_handle(self, stream) -> int:
        return int(stream.cuda_stream)

    def buffers(self, shape: tuple[int, ...], dtype: np.dtype) -> _Buffer:
        torch = self.torch
        tdtype = torch.from_numpy(np.zeros(0, dtype)).dtype
        device = torch.empty(shape, dtype=tdtype, device="cuda")
        host = torch.empty(shape, dtype=tdtype, pin_memory=True)
        return _Buffer(int(device.data_ptr()), host.numpy(), keep=(device, host))

    def to_device(self, buffer: _Buffer, stream) -> None:
        with self.torch.cuda.stream(stream):
            buffer.keep[0].copy_(buffer.keep[1], non_blocking=True)

    def to_host(self, buffer: _Buffer, stream) -> None:
        with self.torch.cuda.stream(stream):
            buffer.keep[1].copy_(buffer.keep[0], non_blocking=True)

    def synchronize(self, stream) -> None:
        stream.synchronize()

    def free(self, buffer: _Buffer) -> None:
        buffer.host = buffer.keep = None  # PyTorch's caching allocator takes the memory back

    def destroy_stream(self, stream) -> None:
        pass


def _logger(trt, verbose: bool):
    """A TensorRT logger that writes to framegraph's log instead of stdout."""

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                log.error("TensorRT: %s", msg)
            elif severity == trt.ILogger.Severity.WARNING:
                log.warning("TensorRT: %s", msg)
            elif verbose and severity == trt.ILogger.Severity.INFO:
                log.info("TensorRT: %s", msg)

    return Logger()


def _cuda_python_module() -> str | None:
    """The import name of cuda-python's runtime bindings: cuda.bindings.runtime (12.6+), else cuda.cudart."""
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            if importlib.util.find_spec(name) is not None:
                return name
        except (ImportError, ValueError):  # find_spec imports the parent package, which may be absent or broken
            continue
    return None


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_")[:60]
