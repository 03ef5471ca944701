from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import pipelines
from pipelines import (Calculator, EngineUnavailableError, Input, ModelError, Output, PipelineError,
                       register_calculator)
from pipelines.types import Tensors

from .engines import EngineOptions, Session, TensorSpec, get_engine, installed_engines, known_engines

PROJECT_ROOT = Path(pipelines.__file__).resolve().parent.parent
_PRECISIONS = ("f32", "f16", "bf16")
# Moves between channels-last and channels-first for a 4-D tensor: (to NCHW, to NHWC).
_LAYOUT_SWAPS = ((0, 3, 1, 2), (0, 2, 3, 1))


@register_calculator
class InferenceCalculator(Calculator):
    """Runs a model on each TENSORS packet with the first engine in `engine` that can load it.

    `model` lists one file, or the same model in several formats; each engine takes the first file whose
    suffix it loads (.onnx for onnxruntime/openvino, .tflite for litert). Relative paths are looked up in the
    current directory, then in the project root. Without `allow_fallback`, only the first engine is tried and
    a missing one is an error; with it, the next is tried, with a warning saying why. The engine, version,
    device and file are logged at INFO. Inputs that differ from the model's only by NHWC vs NCHW are
    transposed (a copy per frame: better to make the producer emit the model's layout).

    Ports:
        TENSORS (Tensors: the model's inputs, in its order) ->
        TENSORS (Tensors: its outputs, in its order, with its output names)

    Example node:
        # BlazeFace short range: ONNX Runtime, or the original .tflite on LiteRT where ORT is missing.
        - name: face_inference
          calculator: InferenceCalculator
          inputs: {TENSORS: input_tensors}
          outputs: {TENSORS: detection_tensors}
          options:
            model: [assets/models/face_detection_short_range.onnx,
                    assets/models/face_detection_short_range.tflite]
            engine: [onnxruntime, litert]
            allow_fallback: true
            input_shape: [1, 128, 128, 3]
    """

    @dataclass(frozen=True)
    class Options:
        model: tuple[str, ...]
        engine: tuple[str, ...] = ("onnxruntime",)  # in order of preference
        allow_fallback: bool = False
        device: str = "cpu"
        threads: int = 0  # 0: the engine's default
        precision: str = "f32"
        input_shape: tuple[int, ...] = ()  # what the graph feeds the first input; checked at open
        engine_options: dict = field(default_factory=dict)  # engine-specific; see each engine's docstring

        def __post_init__(self):
            if not self.model:
                raise ValueError("model: expected at least one model file, got none")
            if not self.engine:
                raise ValueError("engine: expected at least one engine name, got none")
            known = known_engines()
            for name in self.engine:
                if name not in known:
                    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
                    hint = f" Did you mean '{close[0]}'?" if close else ""
                    raise ValueError(f"engine: unknown engine '{name}'.{hint} Known: {', '.join(known)}")
            if self.threads < 0:
                raise ValueError(f"threads must be >= 0 (0: the engine's default), got {self.threads}")
            if self.precision not in _PRECISIONS:
                raise ValueError(f"precision must be one of {', '.join(_PRECISIONS)}, got {self.precision!r}")
            if any(d < 1 for d in self.input_shape):
                raise ValueError(f"input_shape: every dimension must be >= 1, got {list(self.input_shape)}")

    IN = Input[Tensors]("TENSORS")
    OUT = Output[Tensors]("TENSORS")

    def open(self, ctx):
        self._where = f'node "{ctx.node_name}"'
        paths = [self._find_model(entry) for entry in self.options.model]
        self._session = session = self._load(ctx, paths)
        self._model = session.model_path.name
        self._out_names = tuple(spec.name for spec in session.outputs)
        # input index -> (shape last seen, permutation applied to it or None)
        self._layouts: dict[int, tuple[tuple[int, ...], tuple[int, ...] | None]] = {}
        if self.options.input_shape:
            self._check_input_shape(session.inputs[0], tuple(self.options.input_shape))

    def process(self, ctx):
        tensors: Tensors = ctx.get(self.IN)
        specs = self._session.inputs
        if len(tensors) != len(specs):
            raise ModelError(f"{self._where}: model {self._model} takes {len(specs)} input tensor(s) "
                             f"({', '.join(map(str, specs))}) but got {len(tensors)}; hint: feed one array per "
                             "model input, in the model's order")
        arrays = [self._fit(ctx, i, spec, array) for i, (spec, array) in enumerate(zip(specs, tensors.arrays))]
        outputs = self._session.run(arrays)
        ctx.send(self.OUT, Tensors(tuple(outputs), self._out_names))

    def close(self, ctx):
        session, self._session = getattr(self, "_session", None), None
        if session is not None:
            session.close()

    def _find_model(self, entry: str) -> Path:
        return find_model_file(entry, self._where)

    def _load(self, ctx, paths: list[Path]) -> Session:
        names = self.options.engine
        failures = []
        for i, name in enumerate(names):
            try:
                return self._load_with(ctx, name, paths)
            except PipelineError as exc:
                if not self.options.allow_fallback:
                    raise
                failures.append(f"{name}: {str(exc).removeprefix(self._where + ': ')}")
                if i + 1 == len(names):
                    raise EngineUnavailableError(f"{self._where}: no engine of [{', '.join(names)}] could load "
                                                 f"the model; {' | '.join(failures)}") from exc
                ctx.logger.warning("%s: falling back from engine %s to %s: %s", self._where, name,
                                   names[i + 1], failures[-1].partition(": ")[2])
        raise AssertionError("unreachable: Options require at least one engine")

    def _load_with(self, ctx, name: str, paths: list[Path]) -> Session:
        engine = get_engine(name)
        if not engine.is_installed():
            available = ", ".join(installed_engines()) or "none"
            raise EngineUnavailableError(
                f"{self._where}: engine '{name}' is not installed; installed engines: {available}; "
                f"hint: {engine.install_hint}" + ("" if self.options.allow_fallback else
                                                  ", or name an installed engine first in engine: [...], or set "
                                                  "allow_fallback: true to try the next one"))
        path = next((p for p in paths if p.suffix.lower() in engine.formats), None)
        if path is None:
            raise ModelError(f"{self._where}: engine '{name}' loads {', '.join(engine.formats)} files but model "
                             f"lists {', '.join(p.name for p in paths)}; hint: add the model in one of those "
                             "formats to model: [...]")
        version = engine.version() or "(version unknown)"
        o = self.options
        try:
            session = engine.load(path, EngineOptions(o.device, o.threads, o.precision, dict(o.engine_options)))
        except (EngineUnavailableError, ModelError) as exc:
            raise type(exc)(f"{self._where}: {exc}") from exc
        except Exception as exc:  # the runtime's own error types; its message is the useful part
            message = " ".join(str(exc).split())[:400]
            raise ModelError(f"{self._where}: engine '{name}' {version} could not load {path}: "
                             f"{type(exc).__name__}: {message}") from exc
        ctx.logger.info("%s: engine %s %s on %s (%s) runs %s", self._where, name, version, session.device,
                        session.details, path)
        return session

    def _check_input_shape(self, spec: TensorSpec, fed: tuple[int, ...]) -> None:
        if spec.accepts(fed) or any(spec.accepts(_permute(fed, p)) for p in _swaps(fed)):
            return
        dims = _spatial(spec.shape)
        hint = (f"set output_width: {dims[1]}, output_height: {dims[0]} on the ImageToTensorCalculator that feeds "
                "it and input_shape to match, or use a model made for the graph's size"
                if dims else "make input_shape and the producer match the model")
        raise ModelError(f"{self._where}: model {self._model} expects input {_fmt(spec.shape)} but the graph "
                         f"feeds {_fmt(fed)} (input_shape; ImageToTensorCalculator output_width/height); "
                         f"hint: {hint}")

    def _fit(self, ctx, index: int, spec: TensorSpec, array: np.ndarray) -> np.ndarray:
        shape = tuple(array.shape)
        cached = self._layouts.get(index)
        if cached is not None and cached[0] == shape:
            perm = cached[1]
        else:
            perm = None
            if not spec.accepts(shape):
                perm = next((p for p in _swaps(shape) if spec.accepts(_permute(shape, p))), None)
                if perm is None:
                    raise ModelError(f"{self._where}: model {self._model} input {index} expects {_fmt(spec.shape)} "
                                     f"but got {_fmt(shape)}; hint: check the producer's output size and layout")
                ctx.logger.info("%s: input %d arrives as %s, the model takes %s; transposing each frame "
                                "(emit the model's layout upstream to save the copy)", self._where, index,
                                _fmt(shape), _fmt(spec.shape))
            self._layouts[index] = (shape, perm)
        if array.dtype != spec.dtype:
            raise ModelError(f"{self._where}: model {self._model} input {index} expects dtype {spec.dtype.name} "
                             f"but got {array.dtype.name}; hint: convert it upstream "
                             f"(.astype(np.{spec.dtype.name}))")
        return array if perm is None else np.ascontiguousarray(array.transpose(perm))


def _swaps(shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    return _LAYOUT_SWAPS if len(shape) == 4 else ()


def _permute(shape: tuple[int, ...], perm: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(shape[i] for i in perm)


def _spatial(shape: tuple[int | None, ...]) -> tuple[int, int] | None:
    """(height, width) of an image-like 4-D shape, channels last or first, else None."""
    if len(shape) != 4:
        return None
    if shape[3] in (1, 3, 4) and None not in shape[1:3]:
        return shape[1], shape[2]
    if shape[1] in (1, 3, 4) and None not in shape[2:4]:
        return shape[2], shape[3]
    return None


def _fmt(shape) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def find_model_file(entry: str, where: str) -> Path:
    """A model path as a graph names it: absolute, or relative to the current directory, then the project."""
    path = Path(entry).expanduser()
    tried = [path] if path.is_absolute() else list(dict.fromkeys([Path.cwd() / path, PROJECT_ROOT / path]))
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise ModelError(f"{where}: model file {entry} not found; tried {', '.join(map(str, tried))}; "
                     "hint: relative paths are looked up in the current directory, then the project root")
