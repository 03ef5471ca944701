"""Helpers for tests of live network sources: a one-node graph, a collector that takes packets on its own thread
while the test kills and restarts servers, and the source's log lines."""
import itertools
import socket
import threading
import time

HOST = "127.0.0.1"


def increasing(values) -> bool:
    return all(b > a for a, b in itertools.pairwise(values))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def network_graph(url: str, name: str = "cam", **options) -> str:
    opts = ", ".join(f"{k}: {v}" for k, v in {"source": f'"{url}"', **options}.items())
    return f"""
outputs: [video]
nodes:
  - calculator: VideoSourceCalculator
    name: {name}
    outputs: {{IMAGE: video}}
    options: {{{opts}}}
"""


class Collector:
    """Takes a running graph's `video` packets on a thread of its own, so the test can act meanwhile."""

    def __init__(self, handle):
        self.handle, self.packets, self.error = handle, [], None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            for packet in self.handle.outputs("video"):
                self.packets.append((time.monotonic(), packet))
        except BaseException as exc:
            self.error = exc

    def wait_for(self, count: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.packets) < count:
            assert time.monotonic() < deadline, f"only {len(self.packets)} of {count} packets after {timeout} s"
            assert self.error is None, self.error
            time.sleep(0.02)

    def finish(self) -> list:
        self.handle.stop()
        assert self.handle.wait(10)
        self._thread.join(5)
        return [p for _, p in self.packets]


def cam_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "framegraph.cam"]
