"""KServe v2 / Open Inference Protocol: a remote engine. The model runs on an inference server (Triton, KServe,
MLServer, OpenVINO Model Server, ...) reached over HTTP/REST or gRPC with `tritonclient`.

The graph's `model` still names a local copy of the model. It names the model on the server (its file stem,
unless `model_name` is given), and at open its inputs and outputs (read with an installed local engine:
onnxruntime, openvino or litert) are checked against the metadata the server reports, so a graph never streams
into a different model than the one it was written for. Every call has a timeout; a server that goes away
mid-stream ends the graph with one line naming the URL instead of a hang.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from pipelines.engines import Engine, EngineOptions, Session, TensorSpec, get_engine
from pipelines.errors import ModelError, PipelineError

log = logging.getLogger("framegraph.engines")

_DEFAULT_URLS = {"http": "127.0.0.1:8000", "grpc": "127.0.0.1:8001"}  # Triton's ports
_SCHEMES = {"http://": False, "https://": True, "grpc://": False, "grpcs://": True}  # scheme -> TLS
_LOCAL_READERS = ("onnxruntime", "openvino", "litert")  # engines that read a local copy's inputs and outputs
_DATATYPES = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
              "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
              "FP32": np.float32, "FP64": np.float64}
_V2_NAMES = {np.dtype(t): name for name, t in _DATATYPES.items()}


class RemoteEngineError(PipelineError, ConnectionError):
    """An inference server failed, timed out or went away while the graph ran."""


@dataclass(frozen=True)
class _Config:
    """The options as the client uses them: the address split from its scheme, the model named."""

    url: str
    protocol: str
    ssl: bool
    model_name: str
    model_version: str
    timeout_s: float
    binary_data: bool | None  # None: when the server lists the binary_tensor_data extension (HTTP only)
    headers: Mapping[str, str]

    @property
    def where(self) -> str:
        scheme = {"http": "https" if self.ssl else "http", "grpc": "grpcs" if self.ssl else "grpc"}[self.protocol]
        return f"{scheme}://{self.url}"

    @property
    def model(self) -> str:
        return f"model '{self.model_name}'" + (f" version {self.model_version}" if self.model_version else "")

    @classmethod
    def make(cls, own: KServeEngine.Options, model_path: Path) -> _Config:
        url, ssl = _split_url(own.url or _DEFAULT_URLS[own.protocol])
        return cls(url, own.protocol, ssl, own.model_name or model_path.stem, own.model_version, own.timeout_s,
                   None if own.binary_data == "auto" else own.binary_data,
                   {str(k): str(v) for k, v in own.headers.items()})


def _split_url(text: str) -> tuple[str, bool]:
    """(host:port, TLS) from "host:port", "http(s)://host:port" or "grpc(s)://host:port"; ValueError otherwise."""
    url, ssl = text.strip(), False
    for scheme, tls in _SCHEMES.items():
        if url.lower().startswith(scheme):
            url, ssl = url[len(scheme):], tls
    url = url.rstrip("/")
    if not url or "/" in url:
        raise ValueError(f"url: expected host:port (e.g. 127.0.0.1:8000), got {text!r}")
    return url, ssl


class KServeEngine(Engine):
    """A KServe v2 server. `device`: remote (the server decides where the model runs; cpu is taken as the same).
    `threads` does not apply. `precision`: f32 (serve a model stored at another precision instead)."""

    @dataclass(frozen=True)
    class Options:
        #: host:port, optionally with http(s):// or grpc(s)://; default 127.0.0.1:8000 for HTTP, :8001 for gRPC.
        url: str = ""
        protocol: Literal["http", "grpc"] = "http"
        #: The model's name on the server (default: the model file's stem).
        model_name: str = ""
        #: The model's version (default "": the server's choice).
        model_version: str = ""
        #: Every call's timeout, in seconds.
        timeout_s: float = 10.0
        #: HTTP only: binary tensors (true), JSON (false, which every v2 server takes), or auto: binary when the
        #: server lists the binary_tensor_data extension, as Triton does.
        binary_data: bool | str = "auto"
        #: Added to every request (a KServe ingress Host header, an Authorization token).
        headers: dict[str, str] = field(default_factory=dict)

        def __post_init__(self):
            if self.url:
                _split_url(self.url)
            if self.binary_data not in (True, False, "auto"):
                raise ValueError(f"binary_data: expected true, false or auto, got {self.binary_data!r}")
            if self.timeout_s <= 0:
                raise ValueError(f"timeout_s: expected seconds > 0, got {self.timeout_s:g}")
            bad = {k: v for k, v in self.headers.items() if not isinstance(v, (str, int, float))}
            if bad:
                raise ValueError(f"headers: expected text values, got {bad!r}")

    name = "kserve"
    formats = (".onnx", ".ort", ".xml", ".tflite")  # the local copy; the server may hold any format
    module = "tritonclient"
    distributions = ("tritonclient",)
    install_hint = 'pip install "framegraph[kserve]"'
    device_forms = ("remote", "cpu")
    default_device = "remote"

    def devices(self) -> list[str]:
        return ["remote"]

    def load(self, model_path: Path, options: EngineOptions) -> Session:
        own: KServeEngine.Options = self.checked(options)
        path = Path(model_path)
        config = _Config.make(own, path)
        client = _Client(config, self._client_module(config.protocol))
        try:
            server = self._check_server(client, config)
            remote_inputs, remote_outputs = client.model_metadata()
            local = _local_signature(path)
            if local is None:
                log.warning("engine 'kserve': no local engine (%s) can read %s; its inputs and outputs are not "
                            "checked against %s on %s", ", ".join(_LOCAL_READERS), path.name,
                            config.model, config.where)
                inputs, outputs = remote_inputs, remote_outputs
            else:
                inputs = _match(config, "inputs", local[0], remote_inputs, path)
                outputs = _match(config, "outputs", local[1], remote_outputs, path)
            unsupported = [s for s in inputs + outputs if np.dtype(s.dtype) not in _V2_NAMES]
            if unsupported:
                raise ModelError(f"engine 'kserve': {path.name} has tensors of types this engine does not send "
                                 f"({', '.join(map(str, unsupported))}); hint: numeric tensors only")
            binary = config.binary_data
            if binary is None:  # Triton lists the extension; KServe's Python server takes it without listing it
                binary = config.protocol == "http" and ("binary_tensor_data" in server.get("extensions", ())
                                                        or server.get("name") == "kserve")
        except BaseException:
            client.close()
            raise
        details = (f"{config.where}, {config.model}, server {server.get('name', '?')} {server.get('version', '')}"
                   f", {'binary' if binary or config.protocol == 'grpc' else 'JSON'} tensors, timeout "
                   f"{config.timeout_s:g} s").replace("  ", " ")
        return _KServeSession(client, config, path, inputs, outputs, binary, details)

    def _client_module(self, protocol: str):
        try:
            if protocol == "grpc":
                import tritonclient.grpc as module
            else:
                import tritonclient.http as module
        except ImportError as exc:
            raise self.unavailable(f"tritonclient's {protocol} client cannot be imported ({exc})",
                                   self.install_hint + " (it installs tritonclient[http,grpc])") from exc
        return module

    def _check_server(self, client: _Client, config: _Config) -> dict:
        try:
            live = client.call("is_server_live")
            ready = live and client.call("is_server_ready")
        except Exception as exc:
            raise self.unavailable(f"cannot reach {config.where}: {_reason(exc)}",
                                   "start the v2 inference server, or fix the options url and protocol (HTTP and "
                                   "gRPC use different ports)") from exc
        if not ready:
            raise self.unavailable(f"the server at {config.where} is {'not ready' if live else 'not live'}",
                                   "wait until it has loaded its models, or check its log")
        try:
            model_ready, why = client.call("is_model_ready", config.model_name, config.model_version), ""
        except Exception as exc:
            model_ready, why = False, f" ({_reason(exc)})"
        if not model_ready:
            served = client.served_models()
            raise ModelError(f"engine 'kserve': {config.model} is not ready on {config.where}{why}"
                             + (f"; models there: {', '.join(served)}" if served else "")
                             + "; hint: set the option model_name to the name the server uses (default: the "
                             "model file's stem), or load the model on the server")
        try:
            return client.server_metadata()
        except Exception:  # optional for our purposes: only tells whether binary tensors are understood
            return {}


class _Client:
    """The protocol differences in one place. tritonclient's HTTP client is built on gevent and may only be used
    from the thread that made it (the calculator opens in one thread and runs in another), so it is made per
    thread; the gRPC client is thread-safe and shared."""

    def __init__(self, config: _Config, module):
        self.config, self.module = config, module
        self._local = threading.local()
        self._made: list = []
        self._lock = threading.Lock()

    def get(self):
        client = getattr(self._local, "client", None)
        if client is None:
            c = self.config
            if c.protocol == "grpc":
                client = self._made[0] if self._made else self.module.InferenceServerClient(c.url, ssl=c.ssl)
            else:
                client = self.module.InferenceServerClient(c.url, ssl=c.ssl, connection_timeout=c.timeout_s,
                                                           network_timeout=c.timeout_s)
            with self._lock:
                if client not in self._made:
                    self._made.append(client)
            self._local.client = client
        return client

    def call(self, method: str, *args, headers: Mapping[str, str] | None = None, **kwargs):
        if self.config.protocol == "grpc":
            kwargs["client_timeout"] = self.config.timeout_s
        return getattr(self.get(), method)(*args, headers=dict(headers or self.config.headers) or None, **kwargs)

    def server_metadata(self) -> dict:
        return self.call("get_server_metadata", **self._as_json())

    def model_metadata(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        c = self.config
        try:
            meta = self.call("get_model_metadata", c.model_name, c.model_version, **self._as_json())
        except Exception as exc:
            raise ModelError(f"engine 'kserve': {c.model} on {c.where} gave no metadata ({_reason(exc)}); hint: "
                             "a v2 server must answer GET /v2/models/<name>[/versions/<v>]") from exc
        return ([_remote_spec(c, t) for t in meta.get("inputs", [])],
                [_remote_spec(c, t) for t in meta.get("outputs", [])])

    def served_models(self) -> list[str]:
        """Best effort: the repository extension is optional, and some servers list nothing."""
        try:
            index = self.call("get_model_repository_index", **self._as_json())
        except Exception:
            return []
        models = index.get("models", []) if isinstance(index, dict) else index
        return [m.get("name", "?") + (f" ({m['state']})" if m.get("state") else "") for m in models]

    def _as_json(self) -> dict:
        return {"as_json": True} if self.config.protocol == "grpc" else {}

    def close(self) -> None:
        with self._lock:
            made, self._made = self._made, []
        for client in made:
            try:
                client.close()
            except Exception:  # an HTTP client made by another thread may refuse; the process frees it anyway
                pass


class _KServeSession(Session):
    def __init__(self, client: _Client, config: _Config, model_path: Path, inputs: list[TensorSpec],
                 outputs: list[TensorSpec], binary: bool, details: str):
        super().__init__("kserve", model_path, "remote", inputs, outputs, details)
        self._client, self._config = client, config
        self._binary = {"binary_data": binary} if config.protocol == "http" else {}
        # tritonclient sends JSON without a Content-Type, which KServe's server then reads as binary and refuses.
        self._headers = ({"Content-Type": "application/json", **config.headers}
                         if config.protocol == "http" and not binary else config.headers)
        module = client.module
        self._requested = [module.InferRequestedOutput(s.name, **self._binary) for s in outputs]

    def run(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        c, module = self._config, self._client.module
        requests = []
        for spec, array in zip(self.inputs, arrays):
            array = np.ascontiguousarray(array)
            request = module.InferInput(spec.name, list(array.shape), _V2_NAMES[array.dtype])
            request.set_data_from_numpy(array, **self._binary)
            requests.append(request)
        try:
            result = self._client.call("infer", c.model_name, requests, model_version=c.model_version,
                                       outputs=self._requested, headers=self._headers)
        except Exception as exc:
            raise RemoteEngineError(f"engine 'kserve': {c.model} on {c.where} failed: {_reason(exc)}; hint: is the "
                                    f"server still up? (every call times out after {c.timeout_s:g} s: "
                                    "the option timeout_s)") from exc
        outputs = []
        for spec in self.outputs:
            array = result.as_numpy(spec.name)
            if array is None:
                raise RemoteEngineError(f"engine 'kserve': {c.model} on {c.where} returned no output "
                                        f"'{spec.name}'")
            # gRPC and binary HTTP results are read-only views of the response; downstream nodes own theirs.
            outputs.append(array if array.flags.writeable else array.copy())
        return outputs

    def close(self) -> None:
        self._client.close()


def _local_signature(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]] | None:
    """The local copy's inputs and outputs, read by the first installed local engine that loads its format."""
    for name in _LOCAL_READERS:
        engine = get_engine(name)
        if path.suffix.lower() in engine.formats and engine.is_installed():
            session = engine.load(path, EngineOptions())
            try:
                return list(session.inputs), list(session.outputs)
            finally:
                session.close()
    return None


def _remote_spec(config: _Config, tensor: Mapping) -> TensorSpec:
    datatype = str(tensor.get("datatype", ""))
    dtype = _DATATYPES.get(datatype)
    if dtype is None:
        raise ModelError(f"engine 'kserve': {config.model} on {config.where} has tensor '{tensor.get('name')}' of "
                         f"type {datatype or '(none)'}; hint: this engine sends and reads numeric tensors only "
                         f"({', '.join(_DATATYPES)})")
    shape = tuple(None if int(d) < 0 else int(d) for d in tensor.get("shape", []))
    return TensorSpec(str(tensor.get("name", "")), shape, np.dtype(dtype))


def _match(config: _Config, what: str, local: list[TensorSpec], remote: list[TensorSpec],
           path: Path) -> list[TensorSpec]:
    """The local specs in local order, with dimensions the server fixes filled in; a mismatch is an error."""
    by_name = {s.name: s for s in remote}
    matched, bad = [], False
    for spec in local:
        other = by_name.get(spec.name)
        if (other is None or np.dtype(other.dtype) != np.dtype(spec.dtype) or len(other.shape) != len(spec.shape)
                or any(a is not None and b is not None and a != b for a, b in zip(spec.shape, other.shape))):
            bad = True
            break
        matched.append(TensorSpec(spec.name, tuple(a if a is not None else b for a, b in zip(spec.shape,
                                                                                          other.shape)), spec.dtype))
    if bad or (what == "inputs" and len(remote) != len(local)):
        raise ModelError(f"engine 'kserve': {config.model} on {config.where} has {what} "
                         f"{_describe(remote)} but the graph's model {path.name} has {_describe(local)}; hint: "
                         "serve the same model, or point model: / the option model_name at the matching one")
    return matched


def _describe(specs: Sequence[TensorSpec]) -> str:
    return "[" + "; ".join(f"{s.name} {_fmt(s.shape)} {_V2_NAMES.get(np.dtype(s.dtype), np.dtype(s.dtype).name)}"
                           for s in specs) + "]"


def _fmt(shape) -> str:
    return "[" + ",".join("-1" if d is None else str(d) for d in shape) + "]"


def _reason(exc: BaseException) -> str:
    """One line from tritonclient's errors, which can carry a server's whole multi-line response."""
    text = " ".join(str(exc).split()) or "(no message)"
    if type(exc).__name__ != "InferenceServerException":  # its text starts with the status already
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= 300 else text[:297] + "..."
