"""InferenceCalculator: a model run on each TENSORS packet by the first engine of a preference list that can."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipelines import (Calculator, EngineUnavailableError, Input, ModelError, Output, PipelineError,
                       register_calculator)
from pipelines.engines import (PRECISIONS, ConfiguredEngine, EngineOptionError, EngineRunError, Session,
                               TensorSpec, configure_engine, installed_engines, parse_device, parse_engine_choices)
from pipelines.paths import InputFile, resolve
from pipelines.types import Tensors

from .model_header import SUFFIXES as HEADER_SUFFIXES
from .model_header import read_inputs
from .shared_sessions import SESSIONS, Batching, session_key

# Moves between channels-last and channels-first for a 4-D tensor: (to NCHW, to NHWC).
_LAYOUT_SWAPS = ((0, 3, 1, 2), (0, 2, 3, 1))


@register_calculator
class InferenceCalculator(Calculator):
    """Runs a model on each TENSORS packet with the first engine in `engine` that can load it.

    `model` lists one file, or the same model in several formats; each engine takes the first file whose
    suffix it loads (.onnx for onnxruntime/openvino, .tflite for litert). `engine` lists engines in order of
    preference, each a name, ``name:device``, or ``{name: {its options, device, threads, precision}}``; the
    node's `device`, `threads` and `precision` are the defaults of every entry (no `device`: each engine's own
    default, cuda for tensorrt, cpu for most). An engine that is not installed or cannot serve the device or
    the model hands over to the next one, with one warning saying why, unless `allow_fallback: false`; a wrong
    option is an error. The engine, version, device and file are logged at INFO. Inputs that differ from the
    model's only by NHWC vs NCHW are transposed (a copy per frame: better to make the producer emit the model's
    layout). Nodes loading the same thing in one process (one per stream of a multi-stream run) share one
session; with `max_batch` > 1 the frames they send together run as one call on `batch_model` (a batch-dynamic
copy) where the engine batches. docs/engines.md lists the engines and their options.

    Ports:
        TENSORS (Tensors: the model's inputs, in its order) ->
        TENSORS (Tensors: its outputs, in its order, with its output names)

    Example node:
        # BlazeFace short range on a KServe server, or locally on ONNX Runtime, or the .tflite on LiteRT.
        - name: face_inference
          calculator: InferenceCalculator
          inputs: {TENSORS: input_tensors}
          outputs: {TENSORS: detection_tensors}
          options:
            model: [assets/models/face_detection_short_range.onnx,
                    assets/models/face_detection_short_range.tflite]
            engine: [{kserve: {url: 127.0.0.1:8001, protocol: grpc}}, onnxruntime, litert]
            input_shape: [1, 128, 128, 3]
    """

    @dataclass(frozen=True)
    class Options:
        model: tuple[InputFile, ...]
        #: In order of preference; parsed into `pipelines.engines.EngineChoice` entries.
        engine: tuple[str | dict[str, Any], ...] | dict[str, Any] = ("onnxruntime",)
        #: A list is a preference order; false: only the first engine is tried.
        allow_fallback: bool = True
        device: str | None = None  # None: each engine's default device
        threads: int = 0  # 0: the engine's default
        precision: str = "f32"
        input_shape: tuple[int, ...] = ()  # what the graph feeds the first input; checked at validation and open
        #: The options of the one engine in `engine` (older graphs); give options per entry instead.
        engine_options: dict[str, Any] = field(default_factory=dict)
        #: Several streams in one process share this node's session; with max_batch > 1 the frames they send at
        #: about the same time run as one call of up to max_batch rows, on a model whose first dimension is
        #: dynamic: `batch_model` (used instead of `model` by the engines that batch: onnxruntime, openvino), or
        #: `model` itself when it declares one. The first frame waits at most batch_timeout_ms for the others.
        max_batch: int = 1
        batch_timeout_ms: float = 2.0
        batch_model: tuple[InputFile, ...] = ()

        def __post_init__(self):
            if not self.model:
                raise ValueError("model: expected at least one model file, got none")
            try:
                choices = parse_engine_choices(self.engine)
            except ValueError as exc:
                raise ValueError(f"engine: {exc}") from None
            object.__setattr__(self, "engine", choices)
            if self.engine_options and len(choices) > 1:
                raise ValueError(f"engine_options applies to one engine, but engine lists {len(choices)} "
                                 f"({', '.join(c.name for c in choices)}); give each its options in its entry, e.g. "
                                 f"engine: [{{{choices[0].name}: {{...}}}}, {choices[1].name}]")
            if self.engine_options and choices[0].options:
                raise ValueError(f"engine '{choices[0].name}': options given both in its entry and in "
                                 "engine_options; give them in the entry only")
            if self.device is not None:
                try:
                    parse_device(self.device)
                except ValueError as exc:
                    raise ValueError(f"device: {exc}") from None
            if self.threads < 0:
                raise ValueError(f"threads must be >= 0 (0: the engine's default), got {self.threads}")
            if self.precision not in PRECISIONS:
                raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
            if any(d < 1 for d in self.input_shape):
                raise ValueError(f"input_shape: every dimension must be >= 1, got {list(self.input_shape)}")
            if self.max_batch < 1:
                raise ValueError(f"max_batch must be >= 1 (1: no batching), got {self.max_batch}")
            if not 0 <= self.batch_timeout_ms <= 1000:
                raise ValueError(f"batch_timeout_ms must be between 0 and 1000, got {self.batch_timeout_ms}")

    IN = Input[Tensors]("TENSORS")
    OUT = Output[Tensors]("TENSORS")

    @classmethod
    def check(cls, options: Options) -> list[str]:
        """The engines' own options, devices and precisions; an engine that loads one of the model's files; the
        model's declared input shape against `input_shape` (read from .onnx / .tflite headers, no engine)."""
        configured, errors = configure_engines(options)
        candidates = configured if options.allow_fallback else configured[:1]
        suffixes = {Path(m).suffix.lower() for m in options.model}
        if not errors and not any(suffixes & set(c.engine.formats) for c in candidates):
            files = ", ".join(Path(m).name for m in options.model)
            errors.append("; ".join(f"engine '{c.name}' loads {', '.join(c.engine.formats)} files" for c in candidates)
                          + f" but model lists {files}; hint: add the model in one of those formats to model: [...]")
        formats = {f for c in candidates for f in c.engine.formats} if not errors else None
        return errors + _declared_shape_problems(options, formats)

    def open(self, ctx):
        self._where = where = f'node "{ctx.node_name}"'
        configured, errors = configure_engines(self.options)
        if errors:
            raise EngineOptionError(f"{where}: " + "; ".join(errors))
        paths = [find_model_file(entry, where) for entry in self.options.model]
        batch_paths = ([find_model_file(entry, where) for entry in self.options.batch_model]
                       if self.options.max_batch > 1 else [])
        self._session, self._engine = self._load(ctx, configured, paths, batch_paths)
        self._model = self._session.model_path.name
        self._out_names = tuple(spec.name for spec in self._session.outputs)
        # input index -> (shape last seen, permutation applied to it or None)
        self._layouts: dict[int, tuple[tuple[int, ...], tuple[int, ...] | None]] = {}
        if self.options.input_shape:
            problem = _shape_mismatch(self._model, self._session.inputs[0], tuple(self.options.input_shape))
            if problem:
                self.close(ctx)  # close() is not called when open() fails
                raise ModelError(f"{where}: {problem}")

    def process(self, ctx):
        tensors: Tensors = ctx.get(self.IN)
        specs = self._session.inputs
        if len(tensors) != len(specs):
            raise ModelError(f"{self._where}: model {self._model} takes {len(specs)} input tensor(s) "
                             f"({', '.join(map(str, specs))}) but got {len(tensors)}; hint: feed one array per "
                             "model input, in the model's order")
        arrays = [self._fit(ctx, i, spec, array) for i, (spec, array) in enumerate(zip(specs, tensors.arrays))]
        try:
            outputs = self._session.run(arrays)
        except Exception as exc:
            raise _relabel(exc, f"{self._where}: engine '{self._engine}' failed running {self._model}",
                           self._engine, EngineRunError) from exc
        ctx.send(self.OUT, Tensors(tuple(outputs), self._out_names))

    def close(self, ctx):
        session, self._session = getattr(self, "_session", None), None
        if session is not None:
            session.close()

    def _load(self, ctx, configured: list[ConfiguredEngine], paths: list[Path],
              batch_paths: list[Path]) -> tuple[Session, str]:
        candidates = configured if self.options.allow_fallback else configured[:1]
        failures = []
        for i, entry in enumerate(candidates):
            try:
                return self._load_with(ctx, entry, paths, batch_paths), entry.name
            except (EngineUnavailableError, ModelError) as exc:
                if len(candidates) == 1:
                    raise
                reason = getattr(exc, "reason", str(exc))
                failures.append(f"{entry.name}: {reason}")
                if i + 1 == len(candidates):
                    raise EngineUnavailableError(
                        f"{self._where}: no engine of [{', '.join(c.name for c in candidates)}] could load "
                        f"{', '.join(p.name for p in paths)}: {' | '.join(failures)}") from exc
                ctx.logger.warning("%s: engine %s unavailable (%s); falling back to %s", self._where, entry.name,
                                   reason, candidates[i + 1].name)
        raise AssertionError("unreachable: Options require at least one engine")

    def _load_with(self, ctx, entry: ConfiguredEngine, paths: list[Path], batch_paths: list[Path]) -> Session:
        name, engine, where = entry.name, entry.engine, self._where
        path = next((p for p in paths if p.suffix.lower() in engine.formats), None)
        batching = Batching()
        if self.options.max_batch > 1 and engine.batches:
            path = next((p for p in batch_paths if p.suffix.lower() in engine.formats), path)
            batching = Batching(self.options.max_batch, self.options.batch_timeout_ms / 1e3)
        if not engine.is_installed():
            available = ", ".join(installed_engines()) or "none"
            later = len(self.options.engine) > 1 and not self.options.allow_fallback
            err = EngineUnavailableError(
                f"{where}: engine '{name}' is not installed, so it cannot load "
                f"{(path or paths[0]).name}; installed engines: {available}; hint: {engine.install_hint}"
                + (", or set allow_fallback: true to try the next engine" if later else ""))
            err.reason = f"not installed; {engine.install_hint}"
            raise err
        if path is None:
            err = ModelError(f"{where}: engine '{name}' loads {', '.join(engine.formats)} files but model lists "
                             f"{', '.join(p.name for p in paths)}; hint: add the model in one of those formats to "
                             "model: [...]")
            err.reason = f"it loads {', '.join(engine.formats)} files, the model is {', '.join(p.name for p in paths)}"
            raise err
        version = engine.version() or "(version unknown)"
        try:
            # Nodes loading the same thing (one per stream of a multi-stream run) share one session.
            session, shared = SESSIONS.acquire(session_key(name, path, entry.options),
                                               lambda: engine.load(path, entry.options), batching)
        except Exception as exc:  # the runtime's own errors too: its message is the useful part
            raise _relabel(exc, f"{where}: engine '{name}' {version} cannot load {path.name}", name,
                           ModelError) from exc
        ctx.logger.info("%s: engine %s %s on %s (%s) runs %s%s%s", where, name, version, session.device,
                        session.details, path, " (session shared with other nodes)" if shared else "",
                        _batching_note(self.options.max_batch, engine, session))
        return session

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


def _batching_note(max_batch: int, engine, session) -> str:
    if max_batch <= 1:
        return ""
    if not engine.batches:
        return f"; max_batch {max_batch} ignored: engine {engine.name} runs one frame per call"
    if not session.model.batchable:
        return (f"; max_batch {max_batch} ignored: {session.model_path.name} has a fixed batch "
                f"({_fmt(session.inputs[0].shape)}), give a batch-dynamic batch_model")
    return f"; frames of streams sharing it run in batches of up to {max_batch}"


def configure_engines(options: InferenceCalculator.Options) -> tuple[list[ConfiguredEngine], list[str]]:
    """Every entry of a node's `engine` resolved against its engine, with the node's defaults, and every message
    saying what is wrong (the same at validation and at open)."""
    configured, errors = [], []
    for choice in options.engine:
        entry, found = configure_engine(choice, options.device, options.threads, options.precision,
                                        own=options.engine_options or None)
        errors += found
        if entry is not None:
            configured.append(entry)
    return configured, errors


def _declared_shape_problems(options: InferenceCalculator.Options, formats: set[str] | None) -> list[str]:
    """`input_shape` against the first input that each model file an engine may load (of `formats`; None: any)
    declares, for the files whose header can be read (NHWC for NCHW is fine: it is transposed at run time)."""
    if not options.input_shape:
        return []
    found = []
    for entry in options.model:
        suffix = Path(entry).suffix.lower()
        if suffix not in HEADER_SUFFIXES or (formats is not None and suffix not in formats):
            continue
        try:
            path = Path(resolve(InputFile, entry, None))
        except ValueError:
            continue  # not there: said when the options are resolved, or at open
        try:
            inputs = read_inputs(path)
        except ModelError as exc:
            found.append(str(exc))
            continue
        if inputs and inputs[0].shape is not None:
            spec = TensorSpec(inputs[0].name, inputs[0].shape, inputs[0].dtype)
            problem = _shape_mismatch(path.name, spec, tuple(options.input_shape))
            if problem:
                found.append(problem)
    return found


def _shape_mismatch(model: str, spec: TensorSpec, fed: tuple[int, ...]) -> str | None:
    if spec.accepts(fed) or any(spec.accepts(_permute(fed, p)) for p in _swaps(fed)):
        return None
    dims = _spatial(spec.shape)
    hint = (f"set output_width: {dims[1]}, output_height: {dims[0]} on the ImageToTensorCalculator that feeds "
            "it and input_shape to match, or use a model made for the graph's size"
            if dims else "make input_shape and the producer match the model")
    return (f"model {model} expects input {_fmt(spec.shape)} but the graph feeds {_fmt(fed)} (input_shape; "
            f"ImageToTensorCalculator output_width/height); hint: {hint}")


def _relabel(exc: BaseException, where: str, engine: str, default: type) -> PipelineError:
    """`exc` as a framegraph error whose message starts with `where` (node, engine, model), keeping its type when
    it is one of framegraph's; `.reason` is the message without that prefix or a hint, for the fallback warning."""
    text = " ".join(str(exc).split())
    for prefix in (f"engine '{engine}': ", f"engine {engine!r}: "):
        text = text.removeprefix(prefix)
    if not isinstance(exc, PipelineError):
        text = f"{type(exc).__name__}: {text[:400]}"
    message = f"{where}: {text}"
    new: PipelineError | None = None
    if isinstance(exc, PipelineError):
        try:
            new = type(exc)(message)
        except Exception:  # an error class with a constructor of its own
            new = None
    if new is None:
        new = default(message)
    new.reason = text.split("; hint: ")[0]
    return new


def find_model_file(entry: str, where: str) -> Path:
    """A model path as the node has it: resolved by the validator already (absolute), or, for a calculator built
    in Python, relative to the working directory, then the installed graph libraries (`pipelines.paths`)."""
    try:
        return Path(resolve(InputFile, entry, None))
    except ValueError as exc:
        raise ModelError(f"{where}: model {exc}; hint: relative paths are looked up in the graph file's folder "
                         "(the working directory for a calculator built in Python), then the installed graph "
                         "libraries") from None


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
