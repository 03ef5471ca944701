"""A real KServe v2 / Open Inference Protocol server for the tests: MLServer serving ONNX models through ONNX
Runtime, REST and gRPC on 127.0.0.1 only.

    python tests/support/v2_server.py --http-port 18000 --grpc-port 18001 \
        --model face_detector=assets/models/face_detection_short_range.onnx

Run it in a subprocess (`V2Server` below does, on free ports, and waits for it to be ready). MLServer is used
rather than KServe's own `kserve.ModelServer` because that one binds 0.0.0.0 and [::] with no option to change
it, and importing `kserve` beside `tritonclient.grpc` fails (both register the `inference` protobuf package).
The server stops by itself after --lifetime-s seconds or when its parent process goes away, so a crashed
test run never leaves it behind.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"
_DATATYPES = {"tensor(float)": "FP32", "tensor(float16)": "FP16", "tensor(double)": "FP64",
              "tensor(uint8)": "UINT8", "tensor(int8)": "INT8", "tensor(int32)": "INT32",
              "tensor(int64)": "INT64", "tensor(bool)": "BOOL"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class V2Server:
    """The server in a subprocess on free loopback ports; a context manager. `start` returns when the model is
    ready (bounded by `timeout_s`), `stop` kills it (SIGTERM, then SIGKILL after 5 s)."""

    def __init__(self, models: dict[str, Path], timeout_s: float = 30.0):
        self.models, self.timeout_s = {name: Path(path).resolve() for name, path in models.items()}, timeout_s
        self.http_port, self.grpc_port = free_port(), free_port()
        self.process: subprocess.Popen | None = None
        self.startup_s = 0.0

    @property
    def http_url(self) -> str:
        return f"{HOST}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{HOST}:{self.grpc_port}"

    def start(self) -> V2Server:
        start = time.monotonic()
        models = [arg for name, path in self.models.items() for arg in ("--model", f"{name}={path}")]
        # Output goes to a file, not a pipe: nobody reads it while the server runs, and a full pipe would block it.
        self._log = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen([sys.executable, __file__, "--http-port", str(self.http_port),
                                         "--grpc-port", str(self.grpc_port), *models],
                                        stdout=self._log, stderr=subprocess.STDOUT, text=True)
        pending = [f"http://{self.http_url}/v2/models/{name}/ready" for name in self.models]
        while time.monotonic() - start < self.timeout_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"v2 server exited with {self.process.returncode} before it was ready:\n"
                                   f"{self.output()}")
            try:
                with urllib.request.urlopen(pending[0], timeout=1) as response:
                    if response.status == 200:
                        pending.pop(0)
            except OSError:
                time.sleep(0.1)
            if not pending:
                self.startup_s = time.monotonic() - start
                return self
        output = self.output()
        self.stop()
        raise TimeoutError(f"v2 server on {self.http_url} not ready after {self.timeout_s:.0f} s:\n{output}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGCONT)  # in case a test paused it
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if getattr(self, "_log", None) is not None:
            self._log.close()

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets open but answers nothing, as a hung server would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        """SIGKILL, as a crash would; returns once the process is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)

    def output(self) -> str:
        """The last lines the server printed."""
        log = getattr(self, "_log", None)
        if log is None or log.closed:
            return ""
        log.seek(0)
        return log.read()[-3000:]

    def __enter__(self) -> V2Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def __getattr__(name: str):
    # MLServer imports a model's runtime class by dotted path ("v2_server.OnnxRuntimeModel"); making the class on
    # first access keeps `import v2_server` free of mlserver in the test process.
    if name == "OnnxRuntimeModel":
        globals()[name] = cls = _onnx_runtime_model()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _onnx_runtime_model() -> type:
    import onnxruntime as ort
    from mlserver import MLModel
    from mlserver.codecs import NumpyCodec
    from mlserver.types import InferenceResponse

    class OnnxRuntimeModel(MLModel):
        """Runs `parameters.uri` (an ONNX file) in ONNX Runtime on the CPU."""

        async def load(self) -> bool:
            self._session = ort.InferenceSession(self.settings.parameters.uri, providers=["CPUExecutionProvider"])
            self._output_names = [o.name for o in self._session.get_outputs()]
            return True

        async def predict(self, payload):
            feeds = {i.name: NumpyCodec.decode_input(i) for i in payload.inputs}
            arrays = self._session.run(self._output_names, feeds)
            wanted = {o.name for o in payload.outputs or []} or set(self._output_names)
            return InferenceResponse(model_name=self.name, id=payload.id, outputs=[
                NumpyCodec.encode_output(n, a) for n, a in zip(self._output_names, arrays) if n in wanted])

    OnnxRuntimeModel.__module__ = __name__
    return OnnxRuntimeModel


def _serve(models: dict[str, Path], http_port: int, grpc_port: int, lifetime_s: float) -> None:
    import onnxruntime as ort
    from mlserver import MLServer
    from mlserver.settings import ModelParameters, ModelSettings, Settings
    from mlserver.types import MetadataTensor

    def metadata(nodes) -> list:
        return [MetadataTensor(name=n.name, datatype=_DATATYPES[n.type],
                               shape=[d if isinstance(d, int) else -1 for d in n.shape]) for n in nodes]

    def model_settings(name: str, path: Path) -> ModelSettings:
        probe = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return ModelSettings(name=name, implementation="v2_server.OnnxRuntimeModel",
                             parameters=ModelParameters(uri=str(path)),
                             inputs=metadata(probe.get_inputs()), outputs=metadata(probe.get_outputs()))

    settings = Settings(host=HOST, http_port=http_port, grpc_port=grpc_port, metrics_endpoint=None,
                        parallel_workers=0, load_models_at_startup=False, debug=False,
                        model_repository_root=tempfile.mkdtemp(prefix="v2-server-"))
    served = [model_settings(name, path) for name, path in models.items()]
    server = MLServer(settings)
    parent = os.getppid()

    async def watchdog() -> None:
        deadline = time.monotonic() + lifetime_s
        while time.monotonic() < deadline and os.getppid() == parent:
            await asyncio.sleep(0.5)
        await server.stop()

    async def main() -> None:
        guard = asyncio.ensure_future(watchdog())
        try:
            await server.start(served)
        finally:
            guard.cancel()

    asyncio.run(main())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, metavar="NAME=PATH",
                        help="a model to serve under NAME; repeat for more")
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--lifetime-s", type=float, default=600.0)
    args = parser.parse_args()
    _serve({n: Path(p).resolve() for n, _, p in (m.partition("=") for m in args.model)}, args.http_port,
           args.grpc_port, args.lifetime_s)
