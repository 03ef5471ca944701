"""The kserve engine against a real KServe v2 server on loopback: MLServer running the BlazeFace models in ONNX
Runtime (tests/support/v2_server.py), over HTTP and gRPC."""
from __future__ import annotations

import importlib.util
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from calculators.inference.engines.kserve_engine import KServeEngine
from pipelines import Graph
from pipelines.engines import EngineChoice, EngineOptionError, EngineOptions, configure_engine, get_engine
from pipelines.errors import CalculatorError, EngineUnavailableError, GraphValidationError, ModelError
from pipelines.testing import CalculatorRunner
from pipelines.types import Tensors

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from v2_server import V2Server

_CLIENT = ("tritonclient", "geventhttpclient", "grpc")  # tritonclient[http,grpc]
_SERVER = ("mlserver", "onnxruntime")  # tests/support/v2_server.py
_MISSING_CLIENT = [m for m in _CLIENT if importlib.util.find_spec(m) is None]
_MISSING_SERVER = [m for m in _SERVER if importlib.util.find_spec(m) is None]
pytestmark = [pytest.mark.slow, pytest.mark.kserve,
              pytest.mark.skipif(bool(_MISSING_CLIENT), reason=f"needs {', '.join(_MISSING_CLIENT)}: "
                                                               'pip install "framegraph[kserve]"')]


def require_server() -> None:
    if _MISSING_SERVER:
        pytest.skip(f"the test v2 server needs {', '.join(_MISSING_SERVER)}: pip install mlserver onnxruntime")


MODELS = {"face_detection_short_range": 128, "face_detection_full_range": 192}
PROTOCOLS = ("http", "grpc")


def model_file(name: str) -> Path:
    return ROOT / "assets" / "models" / f"{name}.onnx"


def url(server: V2Server, protocol: str) -> str:
    return server.http_url if protocol == "http" else server.grpc_url


def inference(model: str, options: str, name: str = "remote_inference") -> CalculatorRunner:
    return CalculatorRunner(f"name: {name}\ncalculator: InferenceCalculator\n"
                            f"options: {{model: {model_file(model)}, engine: [{{kserve: {{{options}}}}}]}}")


def load(model: str, **own):
    return get_engine("kserve").load(model_file(model), EngineOptions(device="remote", own=KServeEngine.Options(**own)))


def inputs(size: int, count: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(size)  # BlazeFace's range: [-1, 1], NHWC
    return [rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32) for _ in range(count)]


@pytest.fixture(scope="module")
def server():
    require_server()
    with V2Server({name: model_file(name) for name in MODELS}) as running:
        yield running


@pytest.fixture
def own_server():
    """A server this test may pause or kill."""
    require_server()
    with V2Server({"face_detection_short_range": model_file("face_detection_short_range")}) as running:
        yield running


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("model", MODELS)
def test_outputs_match_local_onnx_runtime(server, model, protocol):
    import onnxruntime as ort

    local = ort.InferenceSession(str(model_file(model)), providers=["CPUExecutionProvider"])
    arrays = inputs(MODELS[model])
    runner = inference(model, f"url: '{url(server, protocol)}', protocol: {protocol}")
    out = [p.payload for p in runner.run({"TENSORS": [Tensors((a,)) for a in arrays]})["TENSORS"]]
    assert len(out) == len(arrays)
    for array, got in zip(arrays, out):
        assert got.names == ("regressors", "classificators")
        for want, have in zip(local.run(None, {"input": array}), got.arrays):
            assert have.dtype == np.float32 and have.shape == want.shape
            np.testing.assert_allclose(have, want, rtol=0, atol=1e-5)
            have[...] = 0  # results are the graph's own arrays, not read-only views of a response


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_session_reports_the_server_and_the_model(server, protocol):
    session = load("face_detection_short_range", url=url(server, protocol), protocol=protocol)
    try:
        assert [str(s) for s in session.inputs] == ["input [1,128,128,3] float32"]
        assert [s.name for s in session.outputs] == ["regressors", "classificators"]
        assert session.device == "remote"
        assert f"{protocol}://{url(server, protocol)}" in session.details
        assert "model 'face_detection_short_range'" in session.details and "mlserver" in session.details
        # MLServer's REST endpoint takes JSON tensors only (no binary_tensor_data extension); auto detects that.
        assert ("JSON tensors" if protocol == "http" else "binary tensors") in session.details
    finally:
        session.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_model_the_server_does_not_have_fails_at_open_naming_url_and_model(server, protocol):
    runner = inference("face_detection_short_range", f"url: '{url(server, protocol)}', protocol: {protocol}, "
                                                     "model_name: face_detector_v9")
    with pytest.raises(CalculatorError) as info:
        runner.run({"TENSORS": inputs(128, 1)})
    error = info.value.original
    assert isinstance(error, ModelError)
    message = str(error)
    version = get_engine("kserve").version()
    assert message.startswith(f'node "remote_inference": engine \'kserve\' {version} cannot load '
                              "face_detection_short_range.onnx: model 'face_detector_v9' is not ready on "
                              f"{protocol}://{url(server, protocol)}")
    assert "hint: set the option model_name" in message and "\n" not in message


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_server_model_of_another_shape_fails_at_open(server, protocol):
    with pytest.raises(ModelError) as info:
        load("face_detection_short_range", url=url(server, protocol), protocol=protocol,
             model_name="face_detection_full_range")
    assert str(info.value) == (
        f"engine 'kserve': model 'face_detection_full_range' on {protocol}://{url(server, protocol)} has inputs "
        "[input [1,192,192,3] FP32] but the graph's model face_detection_short_range.onnx has "
        "[input [1,128,128,3] FP32]; hint: serve the same model, or point model: / the option model_name at "
        "the matching one")


def test_the_graphs_input_shape_is_checked_against_the_server_model(server):
    # engine_options, as older graphs give them: the options of the one engine named
    runner = CalculatorRunner(f"name: remote_inference\ncalculator: InferenceCalculator\noptions: "
                              f"{{model: {model_file('face_detection_short_range')}, engine: [kserve], "
                              f"input_shape: [1, 192, 192, 3], engine_options: {{url: '{server.http_url}'}}}}")
    # In a graph, the local copy's header already says so, before anything connects.
    with pytest.raises(GraphValidationError, match=r"expects input \[1,128,128,3\] but the graph feeds \[1,192,192,3\]"):
        runner.run({"TENSORS": inputs(192, 1)})
    # Built in Python (nothing validated), the shape the server reports is checked at open.
    from calculators.inference.inference import InferenceCalculator

    calculator = InferenceCalculator(InferenceCalculator.Options(
        model=(str(model_file("face_detection_short_range")),), engine=({"kserve": {"url": server.http_url}},),
        input_shape=(1, 192, 192, 3)))
    context = type("Context", (), {"node_name": "remote_inference", "logger": logging.getLogger("test")})()
    with pytest.raises(ModelError, match=r'node "remote_inference": model face_detection_short_range.onnx expects '
                                         r"input \[1,128,128,3\] but the graph feeds \[1,192,192,3\]"):
        calculator.open(context)
    calculator.close(context)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_no_server_is_an_unavailable_engine(protocol):
    from v2_server import free_port

    address = f"127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(EngineUnavailableError, match=f"engine 'kserve': cannot reach {protocol}://{address}: "):
        load("face_detection_short_range", url=address, protocol=protocol, timeout_s=2)
    assert time.monotonic() - start < 2


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_server_killed_mid_stream_stops_the_graph_with_one_line_naming_the_url(own_server, protocol):
    frame = inputs(128, 1)[0]
    address = url(own_server, protocol)
    graph = Graph.from_string(f"""
        inputs: [input_tensors]
        outputs: [detection_tensors]
        nodes:
          - name: remote_inference
            calculator: InferenceCalculator
            inputs: {{TENSORS: input_tensors}}
            outputs: {{TENSORS: detection_tensors}}
            options: {{model: {model_file('face_detection_short_range')},
                       engine: [{{kserve: {{url: '{address}', protocol: {protocol}, timeout_s: 2}}}}]}}
    """)
    handle = graph.start(outputs=["detection_tensors"])
    results = handle.outputs("detection_tensors", timeout=10)
    for _ in range(3):
        handle.send("input_tensors", Tensors((frame,)))
        assert next(results).payload.names == ("regressors", "classificators")
    own_server.kill()
    start = time.monotonic()
    handle.send("input_tensors", Tensors((frame,)))
    handle.close_inputs()
    with pytest.raises(CalculatorError) as info:
        handle.wait(10)
    assert time.monotonic() - start < 3
    message = str(info.value)
    assert message.startswith('node "remote_inference" (InferenceCalculator) failed in process() at timestamp 3: '
                              'RemoteEngineError: node "remote_inference": engine \'kserve\' failed running '
                              "face_detection_short_range.onnx: model 'face_detection_short_range' on "
                              f"{protocol}://{address} failed: ")
    assert "hint: is the server still up?" in message and "\n" not in message


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_hung_server_times_out_instead_of_hanging(own_server, protocol):
    from calculators.inference.engines.kserve_engine import RemoteEngineError

    session = load("face_detection_short_range", url=url(own_server, protocol), protocol=protocol, timeout_s=1)
    try:
        frame = inputs(128, 1)[0]
        session.run([frame])
        own_server.pause()
        start = time.monotonic()
        with pytest.raises(RemoteEngineError, match=r"failed: .*(timed out|Deadline Exceeded).*times out after 1 s"):
            session.run([frame])
        assert time.monotonic() - start < 3
    finally:
        session.close()


@pytest.mark.parametrize("options, message", [
    ({"protocol": "websocket"}, "option 'protocol': expected one of 'http', 'grpc', got 'websocket'"),
    ({"url": "http://127.0.0.1:8000/v2/models"}, "url: expected host:port"),
    ({"timeout_s": 0}, "timeout_s: expected seconds > 0, got 0"),
    ({"binary_data": "yes"}, "binary_data: expected true, false or auto, got 'yes'"),
    ({"modelname": "x"}, "unknown option 'modelname'. Did you mean 'model_name'? Valid: url, protocol, model_name"),
])
def test_engine_options_are_checked_before_connecting(options, message):
    configured, errors = configure_engine(EngineChoice("kserve", options=options))
    assert configured is None and len(errors) == 1
    assert errors[0].startswith("engine 'kserve': ") and message in errors[0]
    if "modelname" not in options:  # in Python, the same check when the options are made
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load("face_detection_short_range", **options)


def test_device_and_precision_are_the_servers_choice():
    engine = get_engine("kserve")
    assert configure_engine(EngineChoice("kserve"))[0].options.device.kind == "remote"  # its default device
    with pytest.raises(EngineOptionError, match=r"device 'cuda' is not one it takes. Valid: remote, cpu"):
        engine.load(model_file("face_detection_short_range"), EngineOptions(device="cuda"))
    with pytest.raises(EngineOptionError, match="precision 'f16' is not one it runs at. Valid: f32"):
        engine.load(model_file("face_detection_short_range"), EngineOptions(device="remote", precision="f16"))


def test_threads_zero_is_accepted(server):
    configured, errors = configure_engine(EngineChoice("kserve", threads=0, options={"url": server.http_url}))
    assert errors == []
    session = configured.engine.load(model_file("face_detection_short_range"), configured.options)
    try:
        assert [o.shape for o in session.run(inputs(128, 1))] == [(1, 896, 16), (1, 896, 1)]
    finally:
        session.close()
