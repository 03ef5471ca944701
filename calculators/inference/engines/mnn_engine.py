"""MNN (Alibaba): runs .mnn files through MNN's Module API, on CPU; converts ONNX with MNN's own converter.

An ONNX model is converted once (conversion_cache) with fp32 weights by the converter the MNN wheel ships as the
extension module `_tools`, in a child process (its C++ code prints to stdout and may abort on a model it cannot
take). `MNN.tools` and the `mnnconvert` console script are not used: importing them loads MNN's usage logger,
which runs `pip install aliyun-log-python-sdk` through whatever `pip` is on PATH and posts usage records to an
Aliyun endpoint.

MNN keeps an ONNX model's inputs and outputs as ONNX declares them (tagged NCHW, whatever the real layout; the
NHWC->NCHW Transpose is inside the model and MNN's NC4HW4 packing is internal), so the session takes and returns
arrays exactly as ONNX Runtime does. Inputs are tagged with the format the .mnn file declares for them. The
order is the ONNX model's: MNN 3.0's converter sorts outputs by name (classificators before regressors), so the
entry keeps `model.io.json` beside `model.mnn` with the ONNX model's input and output names in order, and any
.mnn file with a `<name>.io.json` beside it is run in that order; without one, in the order the file lists.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipelines.engines import Engine, EngineOptions, Session, TensorSpec
from pipelines.errors import ModelError

from .conversion_cache import cached_conversion

# precision -> MNN.expr.PrecisionMode member. Normal lets MNN pick fp16/bf16 where the CPU has it.
_PRECISIONS = {"f32": "High", "f16": "Low", "bf16": "Low_BF16"}
_CONVERT = "import sys, _tools; _tools.mnnconvert(sys.argv)"  # argv[0] ("-c") stands for the program name


class MnnEngine(Engine):
    """MNN; no options of its own. `device`: cpu (the MNN wheel on PyPI is built for CPU only; other backends
    are refused, as MNN would fall back to the CPU without saying so). `threads`: MNN's thread_num (0: MNN's
    default, 1). `precision`: f32 (PrecisionMode High), f16 (Low) or bf16 (Low_BF16)."""

    name = "mnn"
    formats = (".mnn", ".onnx")
    module = "MNN"
    distributions = ("MNN",)
    install_hint = 'pip install "framegraph[mnn]"'
    precisions = tuple(_PRECISIONS)

    def load(self, model_path: Path, options: EngineOptions) -> Session:
        self.checked(options)
        import MNN
        import MNN.expr as F
        from MNN import nn

        original = path = Path(model_path)
        source = ""
        if path.suffix.lower() == ".onnx":
            for needed, why in (("_tools", "MNN's converter, which this MNN install lacks"), ("onnx", "onnx")):
                if importlib.util.find_spec(needed) is None:
                    raise self.unavailable(f"converting {path.name} needs {why}",
                                           'pip install "framegraph[mnn]", or convert to .mnn yourself')
            folder = cached_conversion(path, self.name, MNN.version(), "", _convert_onnx)
            path, source = folder / "model.mnn", f"from {original.name} by MNN's converter, "
        in_names, out_names, variables = _describe(F, nn, path)
        inputs = [_spec(F, name, variables.get(name)) for name in in_names]
        outputs = [_spec(F, name, variables.get(name)) for name in out_names]
        formats = [variables[name].data_format if name in variables else F.NCHW for name in in_names]
        threads = options.threads or 1
        module = nn.load_module_from_file(str(path), in_names, out_names,
                                          backend=F.Backend.CPU, thread_num=threads,
                                          precision_mode=getattr(F.PrecisionMode, _PRECISIONS[options.precision]))
        details = f"{source}Module API, CPU, precision {options.precision}, threads {threads}"
        return _MnnSession(F, module, original, inputs, outputs, formats, details)


class _MnnSession(Session):
    def __init__(self, F, module, model_path: Path, inputs, outputs, formats, details: str):
        self._F = F
        self._module = module
        self._formats = formats
        self._dtypes = [_mnn_dtype(F, s.dtype) for s in inputs]
        super().__init__("mnn", model_path, "cpu", inputs, outputs, details)

    def run(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        F = self._F
        # F.const copies the array in.
        variables = [F.const(np.ascontiguousarray(a), list(a.shape), fmt, dtype)
                     for a, fmt, dtype in zip(arrays, self._formats, self._dtypes)]
        results = []
        for var in self._module.onForward(variables):
            if var.data_format == F.NC4HW4:
                var = F.convert(var, F.NCHW)
            results.append(np.array(var.read()))  # read() is a view into MNN's memory: copy it out
        return results

    def close(self) -> None:
        self._module = None


def _convert_onnx(model: Path, out: Path) -> None:
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    names = {"source": model.name, "inputs": [v.name for v in graph.input if v.name not in initializers],
             "outputs": [v.name for v in graph.output]}
    target = out / "model.mnn"
    command = [sys.executable, "-c", _CONVERT, "-f", "ONNX", "--modelFile", str(model), "--MNNModel", str(target),
               "--bizCode", "framegraph"]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not target.is_file() or "Converted Success" not in done.stdout:
        tail = " ".join((done.stdout + done.stderr).split()[-60:])
        raise ModelError(f"engine 'mnn': MNN's converter could not convert {model.name} (exit {done.returncode}): "
                         f"{tail}")
    (out / "model.io.json").write_text(json.dumps(names))


def _describe(F, nn, path: Path) -> tuple[list[str], list[str], dict]:
    """Input and output names in order (from `<name>.io.json` beside the file, else as the file lists them) and
    the file's variables (shapes, dtypes, formats) by name."""
    try:
        info = nn.load_module_from_file(str(path), [], []).get_info()
        variables = F.load_as_dict(str(path))
    except Exception as exc:
        raise ModelError(f"engine 'mnn': could not read {path.name}: {type(exc).__name__}: {exc}") from exc
    if not info or not info.get("inputNames") or not info.get("outputNames"):
        raise ModelError(f"engine 'mnn': {path.name} does not name its inputs and outputs (MNN could not read it?)")
    in_names, out_names = list(info["inputNames"]), list(info["outputNames"])
    order = path.with_suffix(".io.json")
    if order.is_file():
        meta = json.loads(order.read_text())
        if sorted(meta["inputs"]) != sorted(in_names) or sorted(meta["outputs"]) != sorted(out_names):
            raise ModelError(f"engine 'mnn': {order.name} names inputs {meta['inputs']} and outputs "
                             f"{meta['outputs']} but {path.name} has {in_names} and {out_names}")
        in_names, out_names = meta["inputs"], meta["outputs"]
    return in_names, out_names, variables


def _spec(F, name: str, var) -> TensorSpec:
    if var is None:
        return TensorSpec(name, (), np.dtype(np.float32))
    shape = tuple(d if d >= 0 else None for d in var.shape)
    return TensorSpec(name, shape, _numpy_dtype(F, var.dtype))


def _numpy_dtype(F, dtype) -> np.dtype:
    table = {F.float: np.float32, F.double: np.float64, F.int: np.int32, F.int64: np.int64, F.uint8: np.uint8,
             F.int8: np.int8}
    return np.dtype(table.get(dtype, np.float32))


def _mnn_dtype(F, dtype: np.dtype):
    table = {np.dtype(np.float32): F.float, np.dtype(np.float64): F.double, np.dtype(np.int32): F.int,
             np.dtype(np.int64): F.int64, np.dtype(np.uint8): F.uint8, np.dtype(np.int8): F.int8}
    if dtype not in table:
        raise ModelError(f"engine 'mnn': input dtype {dtype.name} is not supported")
    return table[dtype]
