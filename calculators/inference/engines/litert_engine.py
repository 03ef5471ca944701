"""LiteRT (TensorFlow Lite): runs .tflite files as MediaPipe's CPU graphs do, through XNNPACK."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from pipelines.engines import Engine, EngineOptions, Session, TensorSpec

# op_resolver -> OpResolverType member. "builtin_ref" (TFLite's plain reference kernels) is slow but gives a
# second opinion when XNNPACK results are in doubt.
_RESOLVERS = {"auto": "AUTO", "builtin": "BUILTIN", "builtin_ref": "BUILTIN_REF",
              "builtin_without_default_delegates": "BUILTIN_WITHOUT_DEFAULT_DELEGATES"}


class LiteRtEngine(Engine):
    """LiteRT on the CPU. `threads` sets the interpreter's num_threads (0: LiteRT's default). `precision`: f32
    (LiteRT runs a model at the precision it is stored in)."""

    @dataclass(frozen=True)
    class Options:
        #: The kernels: auto (XNNPACK), builtin, builtin_ref (reference kernels: slow, a second opinion) or
        #: builtin_without_default_delegates.
        op_resolver: Literal["auto", "builtin", "builtin_ref", "builtin_without_default_delegates"] = "auto"

    name = "litert"
    formats = (".tflite",)
    module = "ai_edge_litert"
    distributions = ("ai-edge-litert", "ai-edge-litert-nightly")
    install_hint = 'pip install "framegraph[litert]"'

    def load(self, model_path: Path, options: EngineOptions) -> Session:
        own: LiteRtEngine.Options = self.checked(options)
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = own.op_resolver
        interpreter = Interpreter(model_path=str(model_path), num_threads=options.threads or None,
                                  experimental_op_resolver_type=getattr(OpResolverType, _RESOLVERS[resolver]))
        interpreter.allocate_tensors()
        return _LiteRtSession(interpreter, Path(model_path), f"op resolver {resolver}, "
                                                             f"threads {options.threads or 'default'}")


class _LiteRtSession(Session):
    def __init__(self, interpreter, model_path: Path, details: str):
        self._interpreter = interpreter
        in_details = interpreter.get_input_details()
        out_details = interpreter.get_output_details()
        super().__init__("litert", model_path, "cpu", [_spec(d) for d in in_details],
                         [_spec(d) for d in out_details], details)
        self._in_index = [d["index"] for d in in_details]
        self._out_index = [d["index"] for d in out_details]

    def run(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        interp = self._interpreter
        for index, array in zip(self._in_index, arrays):
            interp.set_tensor(index, array)
        interp.invoke()
        # get_tensor returns a copy, so the next invoke cannot change arrays already sent downstream.
        return [interp.get_tensor(index) for index in self._out_index]

    def close(self) -> None:
        self._interpreter = None


def _spec(detail: dict) -> TensorSpec:
    # shape_signature marks dynamic dimensions with -1; shape holds the allocated size.
    signature = detail.get("shape_signature", detail["shape"])
    shape = tuple(int(d) if d >= 0 else None for d in signature)
    return TensorSpec(detail["name"], shape, np.dtype(detail["dtype"]))
