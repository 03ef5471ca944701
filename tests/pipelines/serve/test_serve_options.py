"""--serve's address, token and stream choice; the serve package's imports."""
from __future__ import annotations

import ast
from dataclasses import replace
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.serve import ServeError, ServeOptions, choose_video_streams, parse_address, resolve_options
from pipelines.serve.api import redact

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("text, expected", [
    ("8080", ("127.0.0.1", 8080)), ("0", ("127.0.0.1", 0)), ("0.0.0.0:9000", ("0.0.0.0", 9000)),
    (":9000", ("127.0.0.1", 9000)), ("[::1]:9000", ("::1", 9000)), ("[::]", ("::", 8080)),
    ("localhost", ("localhost", 8080)), ("127.0.0.1:8080", ("127.0.0.1", 8080))])
def test_addresses(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["host:port", "1.2.3.4:", "[::1]:x"])
def test_a_bad_address_says_what_is_expected(text):
    with pytest.raises(ServeError, match=r"expected \[HOST:\]PORT"):
        parse_address(text)


def test_a_port_out_of_range_is_refused():
    with pytest.raises(ServeError, match="0..65535"):
        resolve_options("127.0.0.1:70000")


@pytest.mark.parametrize("address", ["8080", "127.0.0.1:0", "localhost:0", "[::1]:0"])
def test_loopback_needs_no_token(address):
    options, generated = resolve_options(address)
    assert options.token is None and not generated


@pytest.mark.parametrize("address", ["0.0.0.0:0", "[::]:0", "192.0.2.10:8080"])
def test_any_other_host_gets_a_generated_token(address):
    options, generated = resolve_options(address)
    assert generated and len(options.token) >= 24
    again, _ = resolve_options(address)
    assert again.token != options.token  # random, not derived


def test_a_given_token_is_kept_on_any_host():
    options, generated = resolve_options("0.0.0.0:0", token="my-own-token")
    assert options.token == "my-own-token" and not generated
    assert resolve_options("8080", token="my-own-token")[0].token == "my-own-token"
    with pytest.raises(ServeError, match="at least 8"):
        ServeOptions(token="short")


def test_credentials_are_removed_from_source_urls():
    assert redact("rtsp://admin:secret@10.0.0.5:554/stream1") == "rtsp://***@10.0.0.5:554/stream1"
    assert redact("/videos/clip.mp4") == "/videos/clip.mp4"


def test_a_node_status_comes_from_the_stats_when_the_node_set_one():
    from pipelines.serve.api import node_status
    from pipelines.stats import NodeStatsRow

    row = NodeStatsRow("cam", "VideoSourceCalculator", 0, 10, 25.0, 1.0, 2.0, 1, 0, 0)
    assert node_status(row, done=False) == "running" and node_status(row, done=True) == "ended"
    assert node_status(replace(row, status="reconnecting in 1.0 s (attempt 2)"), False).startswith("reconnecting")
    assert node_status(replace(row, status="streaming"), done=True) == "ended"
    assert node_status(replace(row, status="failed: refused"), done=True) == "failed: refused"


def _plan(text: str):
    from pipelines.graph import Graph

    return Graph.from_string(text, filename="g.yaml").plan


def test_the_annotated_video_of_the_built_in_graphs_is_shown():
    pytest.importorskip("av")
    from pipelines.graph import Graph
    from pipelines.resources import find_graph

    # The display node is named by cli: display: and takes the overlay's output, whether enabled or not.
    assert choose_video_streams(Graph(find_graph("face_detect")).plan) == ["output_video"]


PASS_GRAPH = """
{cli}
nodes:
  - calculator: VideoSourceCalculator
    name: source
    outputs: {{IMAGE: input_video}}
    options: {{source: assets/media/astronaut_pan.mp4}}
  - calculator: PassThroughCalculator
    name: show
    inputs: {{IN: input_video}}
    outputs: {{OUT: shown_video}}
"""


def test_stream_choice_follows_the_cli_section():
    pytest.importorskip("av")
    assert choose_video_streams(_plan(PASS_GRAPH.format(cli="cli: {serve: [shown_video]}"))) == ["shown_video"]
    # No cli: section: every image stream (the pass-through's output is untyped, so only the source's).
    assert choose_video_streams(_plan(PASS_GRAPH.format(cli=""))) == ["input_video"]
    plan = _plan(PASS_GRAPH.format(cli=""))
    assert choose_video_streams(plan, ("shown_video", "input_video")) == ["shown_video", "input_video"]
    with pytest.raises(ServeError, match="--serve-stream: no stream named 'nope' in g.yaml; streams: input_video"):
        choose_video_streams(plan, ("nope",))


def test_the_serve_package_imports_no_plugin_and_no_heavy_library_at_import():
    offenders = []
    for path in sorted((ROOT / "pipelines" / "serve").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            offenders += [f"{path.name}:{node.lineno} imports {n}" for n in names
                          if n.split(".")[0] in ("calculators", "apps")]
    assert not offenders, offenders
    code = ("import sys\nfrom pipelines.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "import pipelines.serve\n"
            "print([m for m in ('aiohttp', 'prometheus_client', 'cv2') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr
