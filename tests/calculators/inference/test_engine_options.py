"""How a graph configures engines: the device grammar, engine entries with their own options checked when the
graph is validated, the node's defaults, fallback only for an engine that cannot serve, and errors that name the
node, the engine and the model."""
from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from calculators.inference.inference import InferenceCalculator, configure_engines
from pipelines import Graph
from pipelines.engines import (STANDARD_DEVICE_FORMS, Device, Engine, EngineChoice, EngineOptionError, EngineRunError,
                               Session, TensorSpec, configure_engine, get_engine, known_engines, list_engines,
                               parse_device, parse_engine_choices, register_engine, unregister_engine)
from pipelines.errors import CalculatorError, GraphValidationError, ModelError
from pipelines.options import build_options
from pipelines.testing import CalculatorRunner
from pipelines.types import Tensors

ROOT = Path(__file__).resolve().parents[3]
ONNX = "assets/models/face_detection_short_range.onnx"
TFLITE = "assets/models/face_detection_short_range.tflite"
ZEROS = Tensors((np.zeros((1, 128, 128, 3), np.float32),))
needs_ort = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime is not installed")


def options(**values) -> InferenceCalculator.Options:
    built, errors = build_options(InferenceCalculator.Options, {"model": [ONNX], **values}, lambda key: ROOT)
    assert errors == [], errors
    return built


def graph(node_options: str) -> Graph:
    return Graph.from_string(f"""
        inputs: [input_tensors]
        outputs: [output_tensors]
        nodes:
          - name: face_inference
            calculator: InferenceCalculator
            inputs: {{TENSORS: input_tensors}}
            outputs: {{TENSORS: output_tensors}}
            options: {node_options}
    """)


def inference(node_options: str) -> CalculatorRunner:
    return CalculatorRunner(f"name: face_inference\ncalculator: InferenceCalculator\noptions: {node_options}")


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the device grammar ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, device", [
    ("cpu", Device("cpu")), ("cuda", Device("cuda")), ("cuda:1", Device("cuda", 1)), ("CUDA:0", Device("cuda", 0)),
    ("gpu", Device("gpu")), ("gpu:2", Device("gpu", 2)), ("gpu.1", Device("gpu", 1)), ("tensorrt:3", Device("tensorrt", 3)),
    (" tensorrt ", Device("tensorrt")),
])
def test_standard_devices_parse_to_a_kind_and_an_index(text, device):
    assert parse_device(text, STANDARD_DEVICE_FORMS) == device
    assert parse_device(str(device), STANDARD_DEVICE_FORMS) == device


@pytest.mark.parametrize("text, message", [
    ("cpu:0", "device 'cpu:0': cpu takes no index."),
    ("cuda:x", "device 'cuda:x' is not NAME or NAME:N."),
    ("", "device '' is not NAME or NAME:N."),
    ("rocm", "unknown device 'rocm'."),
    ("npu", "unknown device 'npu'."),  # an engine's own name, not a standard one
])
def test_an_invalid_device_is_a_value_error_listing_the_valid_forms(text, message):
    with pytest.raises(ValueError) as info:
        parse_device(text, STANDARD_DEVICE_FORMS)
    assert str(info.value) == f"{message} Valid: cpu, cuda[:N], gpu[:N], tensorrt[:N]"


def test_engines_add_their_own_device_names_and_take_only_theirs():
    assert parse_device("npu") == Device("npu")  # the engines' forms too when none are given
    assert parse_device("vulkan") == Device("vulkan")
    ort, litert = get_engine("onnxruntime"), get_engine("litert")
    assert ort.accepts(Device("cuda", 1)) and ort.accepts(Device("tensorrt")) and not ort.accepts(Device("npu"))
    assert litert.accepts(Device("cpu")) and not litert.accepts(Device("cuda"))
    for row in list_engines():
        if row["error"]:
            continue
        engine = get_engine(row["name"])
        assert row["device_names"] == list(engine.device_forms)
        assert engine.accepts(parse_device(engine.default_device))  # every engine takes its own default
        assert row["options"] == [f.name for f in dataclasses.fields(engine.Options)]


# --- engine entries -----------------------------------------------------------------------------------------

def test_engine_entries_name_engines_with_a_device_and_their_own_options():
    assert parse_engine_choices("onnxruntime") == (EngineChoice("onnxruntime"),)
    assert parse_engine_choices("onnxruntime:cuda") == (EngineChoice("onnxruntime", "cuda"),)
    assert parse_engine_choices("tensorrt:cuda:1") == (EngineChoice("tensorrt", "cuda:1"),)
    (remote, local) = parse_engine_choices([{"kserve": {"url": "127.0.0.1:8001", "protocol": "grpc", "threads": 0}},
                                           "onnxruntime"])
    assert (remote.name, remote.device, remote.threads, dict(remote.options)) == (
        "kserve", None, 0, {"url": "127.0.0.1:8001", "protocol": "grpc"})
    assert local == EngineChoice("onnxruntime")
    (entry,) = parse_engine_choices({"openvino": {"device": "gpu:1", "precision": "f16", "num_streams": 2}})
    assert (entry.device, entry.precision, dict(entry.options)) == ("gpu:1", "f16", {"num_streams": 2})
    assert parse_engine_choices([{"litert": None}]) == (EngineChoice("litert"),)


@pytest.mark.parametrize("value, message", [
    ([], "expected at least one engine, got none"),
    ([{"kserve": {}, "onnxruntime": {}}], "an engine entry given as a mapping has one key, the engine's name"),
    (["onnxruntime:"], "nothing after ':'"),
    ([{"onnxruntime:cuda": {"device": "cpu"}}], "engine 'onnxruntime': device given twice"),
    ([{"litert": {"threads": -1}}], "engine 'litert': threads: expected an integer >= 0"),
    ([{"litert": {"precision": "int8"}}], "engine 'litert': precision: expected one of f32, f16, bf16"),
    ([{"kserve": "127.0.0.1:8001"}], "engine 'kserve': its entry's value is a mapping of options"),
    ([3.5], "an engine entry is a name, 'name:device' or {name: {options}}"),
])
def test_malformed_engine_entries_are_refused(value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_engine_choices(value)


def test_the_nodes_device_threads_and_precision_are_the_defaults_of_every_entry():
    def settings(**values):
        assert InferenceCalculator.check(options(**values)) == []
        entries, errors = configure_engines(options(**values))
        assert errors == []
        return {e.name: (str(e.options.device), e.options.threads, e.options.precision) for e in entries}

    # No device: each engine's own default (TensorRT runs on cuda; a remote engine where the server says).
    assert settings(engine=["tensorrt", "onnxruntime", "kserve"]) == {
        "tensorrt": ("cuda", 0, "f32"), "onnxruntime": ("cpu", 0, "f32"), "kserve": ("remote", 0, "f32")}
    assert settings(engine=["onnxruntime:tensorrt:1", {"openvino": {"device": "gpu", "threads": 2}}], threads=4,
                    precision="f16") == {"onnxruntime": ("tensorrt:1", 4, "f16"), "openvino": ("gpu", 2, "f16")}
    assert settings(engine=["tensorrt", "onnxruntime"], device="cuda:1") == {
        "tensorrt": ("cuda:1", 0, "f32"), "onnxruntime": ("cuda:1", 0, "f32")}


# --- checked when the graph is validated ----------------------------------------------------------------------

def test_a_typo_in_an_engines_options_is_a_validation_error_naming_node_engine_and_valid_keys():
    with pytest.raises(GraphValidationError) as info:
        graph(f"{{model: {ONNX}, engine: [{{kserve: {{url: 127.0.0.1:8001, protcol: grpc}}}}, onnxruntime]}}")
    (issue,) = info.value.issues
    assert issue.node == "face_inference" and issue.line is not None
    assert issue.message == ("engine 'kserve': unknown option 'protcol'. Did you mean 'protocol'? Valid: url, "
                             "protocol, model_name, model_version, timeout_s, binary_data, headers")
    # the same check, called as the validator calls it
    assert InferenceCalculator.check(options(engine=[{"kserve": {"protcol": "grpc"}}, "onnxruntime"])) == [
        issue.message]


@pytest.mark.parametrize("engine, message", [
    ("[{kserve: {timeout_s: 0}}, onnxruntime]", "engine 'kserve': invalid options: timeout_s: expected seconds > 0, "
                                                "got 0"),
    ("[{litert: {op_resolver: xnnpack}}, onnxruntime]",
     "engine 'litert': option 'op_resolver': expected one of 'auto', 'builtin', 'builtin_ref', "
     "'builtin_without_default_delegates', got 'xnnpack'"),
    ("[onnxruntime:npu]", "engine 'onnxruntime': device 'npu' is not one it takes. Valid: cpu, cuda[:N], "
                          "tensorrt[:N]"),
    ("[{litert: {precision: f16}}]", "engine 'litert': precision 'f16' is not one it runs at. Valid: f32"),
    ("[onnxruntime, onxruntime]", "unknown engine 'onxruntime'. Did you mean 'onnxruntime'? Known engines: "),
])
def test_what_an_engine_never_takes_is_a_validation_error(engine, message):
    with pytest.raises(GraphValidationError) as info:
        graph(f"{{model: [{ONNX}, {TFLITE}], engine: {engine}}}")
    (issue,) = info.value.issues
    assert issue.node == "face_inference" and issue.message.startswith(message), issue.message
    if "Known engines" in message:
        assert issue.message.endswith(", ".join(known_engines()))


def test_engine_options_of_older_graphs_are_the_one_engines_options():
    (entry,), errors = configure_engines(options(engine=["kserve"], engine_options={"url": "127.0.0.1:8001",
                                                                             "protocol": "grpc"}))
    assert errors == [] and (entry.options.own.url, entry.options.own.protocol) == ("127.0.0.1:8001", "grpc")
    assert InferenceCalculator.check(options(engine="kserve", engine_options={"protcol": "grpc"})) == [
        "engine 'kserve': unknown option 'protcol'. Did you mean 'protocol'? Valid: url, protocol, model_name, "
        "model_version, timeout_s, binary_data, headers"]
    with pytest.raises(GraphValidationError, match=re.escape(
            "engine_options applies to one engine, but engine lists 2 (kserve, onnxruntime); give each its options "
            "in its entry, e.g. engine: [{kserve: {...}}, onnxruntime]")):
        graph(f"{{model: {ONNX}, engine: [kserve, onnxruntime], engine_options: {{url: 127.0.0.1:8001}}}}")


def test_no_engine_that_loads_any_of_the_models_files_is_a_validation_error():
    with pytest.raises(GraphValidationError) as info:
        graph(f"{{model: {TFLITE}, engine: [tvm, mnn]}}")
    (issue,) = info.value.issues
    assert issue.message == ("engine 'tvm' loads .onnx files; engine 'mnn' loads .mnn, .onnx files but model lists "
                             "face_detection_short_range.tflite; hint: add the model in one of those formats to "
                             "model: [...]")
    # Without fallback only the first engine counts.
    with pytest.raises(GraphValidationError, match=re.escape("engine 'onnxruntime' loads .onnx, .ort files but model "
                                                             "lists face_detection_short_range.tflite")):
        graph(f"{{model: {TFLITE}, engine: [onnxruntime, litert], allow_fallback: false}}")
    graph(f"{{model: {TFLITE}, engine: [onnxruntime, litert]}}")  # litert takes it


def test_a_plugin_engine_whose_import_fails_is_a_validation_error_naming_the_entry_point(tmp_path):
    dist = tmp_path / "framegraph_broken_engine-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: framegraph-broken-engine\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[framegraph.engines]\nbroken = framegraph_broken_engine:BrokenEngine\n")
    (tmp_path / "framegraph_broken_engine.py").write_text("import framegraph_missing_runtime_module\n")
    code = textwrap.dedent(f"""
        from pipelines import Graph
        from pipelines.errors import GraphValidationError
        try:
            Graph.from_string('''
                inputs: [t]
                outputs: [o]
                nodes:
                  - {{name: face_inference, calculator: InferenceCalculator, inputs: {{TENSORS: t}},
                     outputs: {{TENSORS: o}}, options: {{model: {ROOT / ONNX}, engine: [broken, onnxruntime]}}}}
            ''')
        except GraphValidationError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])})
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip().splitlines()[-1]
    assert 'node "face_inference" (InferenceCalculator): engine \'broken\' could not be loaded: entry point ' in line
    assert "'broken = framegraph_broken_engine:BrokenEngine'" in line and "framegraph-broken-engine 0.1" in line
    assert "ModuleNotFoundError: No module named 'framegraph_missing_runtime_module'" in line


# --- fallback only where an engine cannot serve ---------------------------------------------------------------

@needs_ort
def test_an_unreachable_server_falls_back_with_one_line_saying_why(caplog):
    port = free_port()
    caplog.set_level(logging.INFO)
    out = inference(f"{{model: {ONNX}, engine: [{{kserve: {{url: '127.0.0.1:{port}'}}}}, onnxruntime]}}").run(
        {"TENSORS": [ZEROS]})
    assert out["TENSORS"][0].payload.names == ("regressors", "classificators")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    if importlib.util.find_spec("tritonclient") is not None:
        assert warnings[0].startswith(f'node "face_inference": engine kserve unavailable (cannot reach '
                                      f"http://127.0.0.1:{port}: ")
    else:
        assert warnings[0].startswith('node "face_inference": engine kserve unavailable (not installed; ')
    assert warnings[0].endswith("); falling back to onnxruntime") and "\n" not in warnings[0]
    assert "hint" not in warnings[0]
    chosen = [r.getMessage() for r in caplog.records if " runs " in r.getMessage()]
    assert len(chosen) == 1 and "engine onnxruntime " in chosen[0]


@needs_ort
def test_a_wrong_option_value_for_the_first_engine_is_an_error_not_a_fallback(caplog):
    caplog.set_level(logging.INFO)
    with pytest.raises(GraphValidationError, match="engine 'kserve': invalid options: timeout_s"):
        inference(f"{{model: {ONNX}, engine: [{{kserve: {{timeout_s: -1}}}}, onnxruntime]}}").run({"TENSORS": [ZEROS]})
    assert not [r for r in caplog.records if "falling back" in r.getMessage() or " runs " in r.getMessage()]


@needs_ort
@pytest.mark.tvm
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("tvm") is None, reason="tvm is not installed")
def test_a_wrong_option_value_found_at_load_is_an_error_not_a_fallback(caplog):
    """Only LLVM knows which CPU names are valid: that check happens at load, and still does not fall back."""
    caplog.set_level(logging.INFO)
    with pytest.raises(CalculatorError) as info:
        inference(f"{{model: {ONNX}, engine: [{{tvm: {{mcpu: pentium9}}}}, onnxruntime]}}").run({"TENSORS": [ZEROS]})
    error = info.value.original
    assert isinstance(error, EngineOptionError) and isinstance(error, ValueError)
    assert re.match(r"node \"face_inference\": engine 'tvm' \S+ cannot load face_detection_short_range.onnx: option "
                    r"mcpu: LLVM \d+ does not know CPU 'pentium9'", str(error)), str(error)
    assert not [r for r in caplog.records if "falling back" in r.getMessage() or " runs " in r.getMessage()]


# --- errors name the node, the engine and the model -----------------------------------------------------------

class _StubSession(Session):
    def __init__(self, model_path: Path, fail_with: BaseException | None):
        spec = TensorSpec("input", (1, 128, 128, 3), np.dtype(np.float32))
        super().__init__("stub", model_path, "cpu", [spec], [TensorSpec("out", (1,), np.dtype(np.float32))])
        self._fail_with = fail_with

    def run(self, arrays):
        if self._fail_with is not None:
            raise self._fail_with
        return [np.zeros((1,), np.float32)]


@pytest.fixture
def stub_engines():
    """Engines whose runtime is numpy: one fails to load the model, one fails while running it."""

    @register_engine
    class FailsToLoad(Engine):
        name = "fails_to_load"
        module = "numpy"
        formats = (".onnx",)

        def load(self, model_path, options):
            self.checked(options)
            raise RuntimeError("unsupported operator DepthToSpace\n(mode DCR)")

    @register_engine
    class FailsToRun(Engine):
        name = "fails_to_run"
        module = "numpy"
        formats = (".onnx",)

        def load(self, model_path, options):
            self.checked(options)
            return _StubSession(model_path, RuntimeError("kernel launch failed"))

    yield
    unregister_engine("fails_to_load")
    unregister_engine("fails_to_run")


def test_a_load_failure_names_node_engine_and_model_and_falls_back(stub_engines, caplog):
    with pytest.raises(CalculatorError) as info:
        inference(f"{{model: {ONNX}, engine: fails_to_load}}").run({"TENSORS": [ZEROS]})
    error = info.value.original
    assert isinstance(error, ModelError)
    assert str(error) == ('node "face_inference": engine \'fails_to_load\' (version unknown) cannot load '
                          "face_detection_short_range.onnx: RuntimeError: unsupported operator DepthToSpace (mode DCR)")
    caplog.set_level(logging.WARNING)
    inference(f"{{model: {ONNX}, engine: [fails_to_load, fails_to_run]}}").run({"TENSORS": []})
    assert [r.getMessage() for r in caplog.records] == [
        'node "face_inference": engine fails_to_load unavailable (RuntimeError: unsupported operator DepthToSpace '
        "(mode DCR)); falling back to fails_to_run"]


def test_when_every_engine_fails_the_error_says_why_for_each(stub_engines, caplog):
    port = free_port()
    with pytest.raises(CalculatorError) as info:
        inference(f"{{model: {ONNX}, engine: [fails_to_load, {{kserve: {{url: '127.0.0.1:{port}'}}}}]}}").run(
            {"TENSORS": [ZEROS]})
    message = str(info.value.original)
    assert message.startswith('node "face_inference": no engine of [fails_to_load, kserve] could load '
                              "face_detection_short_range.onnx: fails_to_load: RuntimeError: unsupported operator "
                              "DepthToSpace (mode DCR) | kserve: ")
    kserve = "cannot reach " if importlib.util.find_spec("tritonclient") is not None else "not installed"
    assert f"| kserve: {kserve}" in message


def test_a_run_failure_names_node_engine_and_model(stub_engines):
    with pytest.raises(CalculatorError) as info:
        inference(f"{{model: {ONNX}, engine: fails_to_run}}").run({"TENSORS": [ZEROS]})
    assert info.value.method == "process"
    error = info.value.original
    assert isinstance(error, EngineRunError)
    assert str(error) == ('node "face_inference": engine \'fails_to_run\' failed running '
                          "face_detection_short_range.onnx: RuntimeError: kernel launch failed")


# --- threads: 0 is each engine's own default ------------------------------------------------------------------

LOCAL_ENGINES = {"onnxruntime": ONNX, "openvino": ONNX, "litert": TFLITE, "tvm": ONNX, "ncnn": ONNX, "mnn": ONNX,
                 "torch": ONNX, "tensorrt": ONNX}  # kserve: tests/calculators/inference/test_engine_kserve.py


@pytest.mark.parametrize("name", [pytest.param(n, marks=[getattr(pytest.mark, n)] + ([pytest.mark.slow] if n == "tvm" else []))
                                  for n in LOCAL_ENGINES])
def test_threads_zero_is_accepted_by_every_installed_engine(name):
    engine = get_engine(name)
    if not engine.is_installed():
        pytest.skip(f"{name} is not installed")
    try:
        devices = engine.devices()
    except Exception as exc:  # a runtime that does not start here
        pytest.skip(f"{name} lists no devices here: {exc}")
    if engine.default_device not in devices:
        pytest.skip(f"{name} has no {engine.default_device} here")
    if name == "ncnn" and importlib.util.find_spec("pnnx") is None:
        pytest.skip("ncnn converts ONNX with pnnx, which is not installed")
    if name == "torch" and importlib.util.find_spec("onnx2torch") is None:
        pytest.skip("torch converts ONNX with onnx2torch, which is not installed")
    configured, errors = configure_engine(EngineChoice(name, threads=0))
    assert errors == [] and configured.options.threads == 0
    session = engine.load(ROOT / LOCAL_ENGINES[name], configured.options)
    try:
        outputs = session.run([np.zeros((1, 128, 128, 3), np.float32)])
        assert sorted(o.shape for o in outputs) == [(1, 896, 1), (1, 896, 16)]
    finally:
        session.close()


# --- the runtime names no engine ------------------------------------------------------------------------------

def test_the_engine_api_in_the_runtime_names_no_engine_and_imports_no_plugin():
    source = (ROOT / "pipelines" / "engines.py").read_text()
    assert "calculators" not in source
    named = [n for n in ("onnxruntime", "openvino", "litert", "torch", "ncnn", "mnn", "tvm", "kserve")
             if re.search(rf"\b{n}\b", source)]
    assert named == []
    # tensorrt appears only as the standard device form (ONNX Runtime's TensorRT provider is a device too)
    assert [m.start() for m in re.finditer(r"\btensorrt\b", source)] == [source.index('"tensorrt[:N]"') + 1]


# --- the model's declared input shape, at validation -----------------------------------------------------------

def test_run_graph_validate_fails_on_a_model_whose_input_shape_does_not_fit(tmp_path):
    path = tmp_path / "wrong_size.yaml"
    path.write_text(textwrap.dedent(f"""
        inputs: [input_tensors]
        outputs: [output_tensors]
        nodes:
          # The short-range model takes 128x128; this graph feeds it 192x192.
          - name: face_inference
            calculator: InferenceCalculator
            inputs: {{TENSORS: input_tensors}}
            outputs: {{TENSORS: output_tensors}}
            options:
              model: [{ROOT / ONNX}, {ROOT / TFLITE}]
              engine: [tvm, litert]
              input_shape: [1, 192, 192, 3]
    """))
    result = subprocess.run([sys.executable, "-m", "pipelines", str(path), "--validate"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "Traceback" not in result.stderr, result.stderr
    for model in ("face_detection_short_range.onnx", "face_detection_short_range.tflite"):
        assert any(f'node "face_inference" (InferenceCalculator): model {model} expects input [1,128,128,3] but the '
                   "graph feeds [1,192,192,3]" in line for line in errors), errors


@pytest.mark.openvino
def test_openvino_keeps_compiled_models_in_framegraphs_cache(tmp_path, monkeypatch):
    if importlib.util.find_spec("openvino") is None:  # the engine imports it, with its telemetry off
        pytest.skip("openvino is not installed")
    monkeypatch.setenv("FRAMEGRAPH_CACHE", str(tmp_path))
    engine, image = get_engine("openvino"), np.random.default_rng(0).random((1, 128, 128, 3), np.float32)
    results = {}
    for label, options in (("plain", {"model_cache": False}), ("compiled", {}), ("from the cache", {})):
        configured, errors = configure_engine(EngineChoice("openvino", options=options))
        assert errors == []
        session = engine.load(ROOT / ONNX, configured.options)
        try:
            results[label] = session.run([image])
        finally:
            session.close()
        if label == "plain":
            assert not list(tmp_path.rglob("*.blob"))
    assert list((tmp_path / "engines" / "openvino").glob("*.blob"))
    for label in ("compiled", "from the cache"):
        for got, want in zip(results[label], results["plain"]):
            np.testing.assert_array_equal(got, want)
