"""run-graph --serve as a user runs it: the page lives as long as the graph; Ctrl-C stops both."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
from pathlib import Path

import pytest
from serve_support import GRAPH, get, long_clip, require_serve_extra

require_serve_extra()

TESTS = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS / "plugins"), os.environ.get("PYTHONPATH", "")])}


class RunGraph:
    """run-graph in a process of its own; its stderr collected by a thread, the page's URL parsed from it."""

    def __init__(self, *args):
        self.process = subprocess.Popen([sys.executable, "-m", "pipelines", *map(str, args)], env=ENV, text=True,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.process.stderr), daemon=True)
        self._reader.start()

    def url(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = re.search(r"live page: (http://\S+)", line)
                if found:
                    return found.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("no 'live page:' line: " + "".join(self.lines))

    def wait(self, timeout: float = 30.0) -> tuple[int, str]:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code, "".join(self.lines)


def graph_file(tmp_path, seconds: float) -> Path:
    path = tmp_path / "live.yaml"
    path.write_text(GRAPH.format(clip=long_clip(tmp_path, seconds)))
    return path


def refused(url: str) -> bool:
    try:
        get(url, timeout=2)
    except (urllib.error.URLError, ConnectionError):
        return True
    return False


@pytest.mark.slow
def test_the_page_serves_while_the_graph_runs_and_stops_with_it(tmp_path):
    run = RunGraph(graph_file(tmp_path, seconds=3), "--serve", "127.0.0.1:0", "--no-progress")
    url = run.url()
    status, _, body = get(url + "api/graph")
    assert status == 200 and json.loads(body)["video"] == ["input_video"]  # what the display node takes
    assert json.loads(get(url + "api/stats")[2])["done"] is False
    code, stderr = run.wait()
    assert code == 0, stderr
    assert "Traceback" not in stderr and "(input_video)" in stderr
    assert refused(url + "api/stats")  # the source ended: the graph and its page are gone


@pytest.mark.slow
def test_ctrl_c_stops_the_graph_and_the_page(tmp_path):
    run = RunGraph(graph_file(tmp_path, seconds=60), "--serve", "127.0.0.1:0", "--no-progress",
                   "--serve-token", "cli-test-token")
    url = run.url()
    assert url.endswith("/?token=cli-test-token")
    base = url.split("?")[0]
    assert get(base + "api/stats")[0] == 401
    assert get(base + "api/stats?token=cli-test-token")[0] == 200
    run.process.send_signal(signal.SIGINT)
    code, stderr = run.wait(20)
    assert code == 130, stderr
    assert "interrupted: outputs finalized" in stderr and "Traceback" not in stderr
    assert refused(base + "api/stats")


@pytest.mark.slow
@pytest.mark.parametrize("flags, message", [
    (["--serve", "localhost:http"], "--serve localhost:http: expected [HOST:]PORT"),
    (["--serve", "0", "--serve-stream", "nope"], "--serve-stream: no stream named 'nope'"),
    (["--serve", "0", "--serve-token", "short"], "--serve-token must be at least 8 characters")])
def test_a_wrong_serve_option_is_one_line_and_exit_2(tmp_path, flags, message):
    run = RunGraph(graph_file(tmp_path, seconds=1), *flags)
    code, stderr = run.wait()
    assert code == 2, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {message}"), stderr
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_a_port_in_use_is_one_readable_error_and_stops_the_graph(tmp_path):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code, stderr = RunGraph(graph_file(tmp_path, seconds=30), "--serve", f"127.0.0.1:{port}").wait()
    assert code == 1, stderr
    assert f"error: --serve 127.0.0.1:{port}: cannot listen there" in stderr and "Traceback" not in stderr


@pytest.mark.slow
def test_serve_does_not_go_with_a_batch_run(tmp_path):
    code, stderr = RunGraph(graph_file(tmp_path, seconds=1), "--serve", "--output-dir", tmp_path / "out").wait()
    assert code == 2 and "error: --serve shows one running graph; it does not go with --output-dir" in stderr
