"""Apache TVM: compiles an ONNX model for this machine's CPU at first use and runs it in the Relax VM.

The ONNX file goes through TVM's Relax frontend (`tvm.relax.frontend.onnx.from_onnx`; apache-tvm 0.27 has no
Relay any more) and `tvm.compile` for an LLVM target with the host CPU named (`-mcpu`), then becomes a shared
library in the conversion cache (conversion_cache.py), keyed by the model's hash, TVM's version and the
target; later loads only `dlopen` it. Compiling needs the `onnx` package and a C/C++ compiler (TVM links the
library with g++, gcc or clang; $CXX overrides). Inputs and outputs keep the ONNX model's names, layouts
(BlazeFace: NHWC in) and order.

There is no tuning (MetaSchedule would take tens of minutes per model). Instead every operator gets one simple
schedule at compile time: convolutions in NHWC/HWIO layout, outer loops run in parallel on TVM's thread pool,
the innermost output loop vectorised for the CPU. On BlazeFace (2-core AMD EPYC) that is 3x (short range) and
7x (full range) faster than TVM's unscheduled default, and 2.5-4x slower than ONNX Runtime; `schedule: none`
keeps TVM's default (an operator the simple schedule does not fit gets that anyway). `threads` is not applied:
TVM's pool takes $TVM_NUM_THREADS, by default one thread per physical core as TVM counts them (half the logical
CPUs on x86). LLVM's `-mcpu=native` is refused by the LLVM inside the apache-tvm wheel, so the host CPU is named.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from pipelines.engines import Engine, EngineOptions, Session, TensorSpec

from .conversion_cache import cached_conversion

log = logging.getLogger("framegraph.engines")

_SCHEDULES = {"default": "nhwc-pv1", "none": "plain"}  # name -> its tag in the cache key (bump when it changes)
_LIBRARY = "model.so"
_SIGNATURE = "io.json"
_VECTOR = 16  # lanes the innermost loop is split to; LLVM narrows it to what -mcpu has


class TvmEngine(Engine):
    """Apache TVM, compiling for this machine's CPU. `threads` is not applied (TVM's pool takes $TVM_NUM_THREADS;
    0 and any other value leave it to TVM). `precision`: f32 (the model is compiled at the precision it is
    stored in). The compiled library is cached per TVM version, target and schedule, so a graph moved to another
    CPU compiles again."""

    @dataclass(frozen=True)
    class Options:
        #: LLVM CPU name, e.g. "znver4", "skylake-avx512", "generic" (default: the host's, as LLVM detects it).
        mcpu: str = ""
        #: default: the simple parallel/vectorised schedule; none: TVM's unscheduled loops.
        schedule: Literal["default", "none"] = "default"

    name = "tvm"
    formats = (".onnx",)
    module = "tvm"
    distributions = ("apache-tvm",)
    install_hint = 'pip install "framegraph[tvm]"'

    def devices(self) -> list[str]:
        return ["cpu"]

    def load(self, model_path: Path, options: EngineOptions) -> Session:
        own: TvmEngine.Options = self.checked(options)
        import tvm
        from tvm import relax
        from tvm.target import codegen

        schedule = own.schedule
        mcpu = own.mcpu or codegen.llvm_get_system_cpu()
        if not codegen.llvm_is_valid_cpu(mcpu, codegen.llvm_get_system_triple()):
            raise self.refuse(f"option mcpu: LLVM {codegen.llvm_version_major()} does not know CPU {mcpu!r}",
                              f"leave mcpu out to use the host's ({codegen.llvm_get_system_cpu()}), or name an "
                              "older CPU of the same family")
        target = {"kind": "llvm", "mcpu": mcpu}
        folder = cached_conversion(Path(model_path), self.name, tvm.__version__,
                                   f"llvm-mcpu-{mcpu}-{_SCHEDULES[schedule]}",
                                   lambda model, out: self._compile(model, out, target, schedule))
        signature = json.loads((folder / _SIGNATURE).read_text())
        library = tvm.runtime.load_module(str(folder / _LIBRARY))
        device = tvm.cpu()
        vm = relax.VirtualMachine(library, device)
        return _TvmSession(vm, device, Path(model_path), [_spec(s) for s in signature["inputs"]],
                           [_spec(s) for s in signature["outputs"]], f"llvm -mcpu={mcpu}, schedule {schedule}, "
                           f"Relax VM, compiled library {folder / _LIBRARY}")

    def _compile(self, model: Path, out: Path, target: dict, schedule: str) -> None:
        try:
            import onnx
        except ImportError as exc:
            raise self.unavailable("compiling an ONNX model needs the onnx package",
                                   'pip install "framegraph[tvm]" (or pip install onnx)') from exc
        import tvm
        from tvm.relax.frontend.onnx import from_onnx
        from tvm.support.cc import get_cc

        if get_cc() is None:
            raise self.unavailable("no C/C++ compiler found to link the compiled model (looked for g++, gcc, "
                                   "clang++, clang, c++, cc and $CXX)",
                                   "install one (apt-get install g++), once: the result is cached")
        proto = onnx.load(str(model))
        graph_inputs = _onnx_values(proto.graph, onnx, inputs=True)
        graph_outputs = _onnx_values(proto.graph, onnx, inputs=False)
        module = from_onnx(proto, keep_params_in_input=False)
        if schedule == "default":
            module = _schedule(module, tvm.target.Target(target))
        executable = tvm.compile(module, target=tvm.target.Target(target))
        executable.export_library(str(out / _LIBRARY))
        (out / _SIGNATURE).write_text(json.dumps({"target": target, "schedule": schedule, "inputs": graph_inputs,
                                                  "outputs": graph_outputs}) + "\n")


class _TvmSession(Session):
    def __init__(self, vm, device, model_path: Path, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 details: str):
        super().__init__("tvm", model_path, "cpu", inputs, outputs, details)
        import tvm

        self._tvm = tvm
        self._vm = vm
        self._main = vm["main"]
        self._device = device

    def run(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        tensor = self._tvm.runtime.tensor
        result = self._main(*(tensor(np.ascontiguousarray(a), self._device) for a in arrays))
        if isinstance(result, self._tvm.runtime.Tensor):  # a one-output model returns the tensor itself
            result = (result,)
        return [r.numpy() for r in result]  # numpy() copies out of the VM's buffers

    def close(self) -> None:
        self._main = self._vm = None


def _schedule(module, target):
    """Lower the Relax module to TIR as `tvm.compile` would, then give each TIR function the simple CPU schedule
    (functions it does not fit are left to TVM's default lowering)."""
    from tvm import relax, s_tir, tirx, transform
    from tvm.s_tir import dlight
    from tvm.s_tir.dlight.analysis import normalize_prim_func
    from tvm.s_tir.dlight.base import try_inline

    class ParallelVectorize(dlight.ScheduleRule):
        """Producers inlined; per block, spatial loops outside reductions except the innermost, which goes inside
        them and is vectorised; the outer spatial loops fused and run in parallel; reduction init split off."""

        def apply(self, func, target, tunable):
            if not isinstance(func, tirx.PrimFunc):
                return None
            try:
                return self._apply(func)
            except Exception as exc:  # TVM raises builtins (ScheduleError is a RuntimeError, ...); the default
                log.debug("tvm: %s keeps the default schedule: %s", func.attrs and func.attrs.get("global_symbol"),
                          " ".join(str(exc).split())[:200])  # lowering is still correct, only slower
                return None

        def _apply(self, func):
            sch = s_tir.Schedule(func)
            blocks = normalize_prim_func(sch)
            if blocks is None:
                return None
            reductions = []
            for info in try_inline(sch, blocks):
                block, kinds = info.block_rv, info.dom_kind()
                loops = sch.get_loops(block)
                spatial = [loop for loop, kind in zip(loops, kinds) if kind == "S"]
                reduce = [loop for loop, kind in zip(loops, kinds) if kind == "R"]
                if not spatial or len(spatial) + len(reduce) != len(loops):
                    continue  # opaque loops: leave the block as it is
                inner = spatial[-1]
                sch.reorder(*spatial[:-1], *reduce, inner)
                if len(spatial) > 1:
                    sch.parallel(sch.fuse(*spatial[:-1]))
                extent = sch.get(inner).extent
                if isinstance(extent, tirx.IntImm) and extent.value > 1:
                    if extent.value > _VECTOR:
                        inner = sch.split(inner, [None, _VECTOR])[1]
                    sch.vectorize(inner)
                if reduce:
                    reductions.append((block, reduce[0]))
            for block, first in reductions:
                sch.decompose_reduction(block, first)
            return sch

    module = relax.transform.ConvertLayout({"relax.nn.conv2d": ["NHWC", "HWIO"]})(module)
    with target:
        return transform.Sequential([
            relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(), relax.transform.FoldConstant(),
            relax.transform.FuseOps(), relax.transform.FuseTIR(), dlight.ApplyDefaultSchedule(ParallelVectorize()),
        ])(module)


def _onnx_values(graph, onnx, inputs: bool) -> list[dict]:
    """The graph's real inputs (initializers left out, as old exporters list them too) or its outputs."""
    if inputs:
        initializers = {i.name for i in graph.initializer}
        values = [v for v in graph.input if v.name not in initializers]
    else:
        values = list(graph.output)
    found = []
    for value in values:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor.shape.dim]
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)).name
        found.append({"name": value.name, "shape": dims, "dtype": dtype})
    return found


def _spec(entry: dict) -> TensorSpec:
    return TensorSpec(entry["name"], tuple(entry["shape"]), np.dtype(entry["dtype"]))

