"""run-graph as a user runs it: a separate process, exit codes, one readable line, no traceback."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS / "plugins"), os.environ.get("PYTHONPATH", "")])}


def run_graph(*args, timeout=60, **kwargs):
    return subprocess.run([sys.executable, "-m", "pipelines", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=ENV, **kwargs)


def write(tmp_path, text, name="g.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def assert_one_clean_error(result, code, *fragments):
    assert result.returncode == code, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_help_is_instant_and_imports_no_engine_or_media_library():
    code = ("import sys\nfrom pipelines.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = ['onnxruntime', 'openvino', 'ai_edge_litert', 'tensorrt', 'torch', 'cv2', 'av', 'numpy']\n"
            "print([m for m in heavy if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_missing_graph_file(tmp_path):
    assert_one_clean_error(run_graph(tmp_path / "nope.yaml"), 2, "nope.yaml: graph file not found")


def test_validation_errors_exit_2_with_every_issue(tmp_path):
    path = write(tmp_path, """
        inputs: [a]
        nodes:
          - {calculator: PassThruCalculator, inputs: {IN: a}}
          - {calculator: PacketThinnerCalculator, name: thin, inputs: {IN: a}, options: {evry: 2}}
    """)
    result = run_graph(path)
    assert_one_clean_error(result, 2, "unknown calculator 'PassThruCalculator'", "unknown option 'evry'")
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 2


def test_unsafe_yaml_tag_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = write(tmp_path, f"nodes: !!python/object/apply:os.system ['touch {marker}']\n")
    assert_one_clean_error(run_graph(path), 2, "is not allowed")
    assert not marker.exists()


def test_node_failure_mid_stream_exits_1_names_the_node_and_closes_sinks(tmp_path):
    events = tmp_path / "events.txt"
    path = write(tmp_path, f"""
        nodes:
          - {{calculator: CountingSource, name: src, outputs: {{OUT: n}}, options: {{count: 0}}}}
          - {{calculator: RaiseAtCalculator, name: fragile, inputs: {{IN: n}}, outputs: {{OUT: m}}, options: {{at: 20}}}}
          - {{calculator: FileEventSink, name: sink, inputs: {{IN: m}}, options: {{path: "{events}"}}}}
    """)
    result = run_graph(path, timeout=30)
    assert_one_clean_error(result, 1, 'node "fragile" (RaiseAtCalculator)', "timestamp 20", "boom at 20")
    assert events.read_text().splitlines()[-1] == "close"
    debug = run_graph(path, "--debug", timeout=30)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_set_override_and_validate(tmp_path):
    path = write(tmp_path, "nodes: [{calculator: CountingSource, name: src, outputs: {OUT: n}}]\n")
    ok = run_graph(path, "--validate", "--set", "src.count=3")
    assert ok.returncode == 0 and "OK (1 nodes)" in ok.stdout
    assert_one_clean_error(run_graph(path, "--set", "src.cnt=3"), 2, "unknown option 'cnt'. Did you mean 'count'?")


def test_stats_trace_and_viz(tmp_path):
    path = write(tmp_path, """
        nodes:
          - {calculator: CountingSource, name: src, outputs: {OUT: n}, options: {count: 50}}
          - {calculator: PassThroughCalculator, name: copy, inputs: {IN: n}, outputs: {OUT: m}}
    """)
    trace = tmp_path / "trace.json"
    result = run_graph(path, "--stats", "--trace", trace)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stderr.splitlines() if line.startswith("copy "))
    assert row.split()[2:4] == ["50", "50"]
    events = json.loads(trace.read_text())["traceEvents"]
    assert sum(1 for e in events if e.get("name") == "copy" and e.get("cat") == "process") == 50
    dot = run_graph(path, "--viz")
    assert dot.returncode == 0 and '"src" -> "copy" [label="n"]' in dot.stdout
    assert run_graph(path, "--viz", tmp_path / "g.mmd").returncode == 0
    assert "flowchart TD" in (tmp_path / "g.mmd").read_text()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_cleanly_with_exit_130(tmp_path):
    events = tmp_path / "events.txt"
    path = write(tmp_path, f"""
        nodes:
          - {{calculator: CountingSource, name: src, outputs: {{OUT: n}}, options: {{count: 0, delay: 0.002}}}}
          - {{calculator: FileEventSink, name: sink, inputs: {{IN: n}}, options: {{path: "{events}"}}}}
    """)
    proc = subprocess.Popen([sys.executable, "-m", "pipelines", str(path)], stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (not events.exists() or events.read_text().count("packet") < 20):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert events.read_text().splitlines()[-1] == "close"
    assert "Traceback" not in err


@pytest.mark.slow
def test_ctrl_c_while_the_graph_is_opening_stops_it_once_open(tmp_path):
    """A Ctrl-C during start (an engine importing or loading) waits for the open to finish, then stops the graph:
    it must not break the open and read as that node's error."""
    events = tmp_path / "events.txt"
    path = write(tmp_path, f"""
        nodes:
          - {{calculator: CountingSource, name: src, outputs: {{OUT: n}}, options: {{count: 0, delay: 0.002}}}}
          - {{calculator: FileEventSink, name: sink, inputs: {{IN: m}}, options: {{path: "{events}"}}}}
          - {{calculator: SlowPassThrough, name: slow, inputs: {{IN: n}}, outputs: {{OUT: m}}, options: {{open_delay: 1.5}}}}
    """)
    proc = subprocess.Popen([sys.executable, "-m", "pipelines", str(path)], stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not events.exists():  # the sink is open: "slow" is opening now
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "error:" not in err, err
    assert events.read_text().splitlines()[-1] == "close"


@pytest.mark.slow
def test_list_calculators_and_engines():
    calcs = run_graph("--list-calculators")
    assert calcs.returncode == 0 and "FlowLimiterCalculator" in calcs.stdout and "CountingSource" in calcs.stdout
    engines = run_graph("--list-engines")
    assert engines.returncode == 0 and "onnxruntime" in engines.stdout


def test_main_called_from_a_program_leaves_its_logging_as_it_found_it(tmp_path, capsys, caplog):
    import logging

    from pipelines.cli import main

    logger = logging.getLogger("framegraph")
    before = logger.handlers[:], logger.level, logger.propagate
    assert main([str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: graph file not found" in capsys.readouterr().err
    assert (logger.handlers[:], logger.level, logger.propagate) == before
    with caplog.at_level(logging.WARNING):  # what the program logs under framegraph still reaches its handlers
        logging.getLogger("framegraph.graph").warning("after main")
    assert [r.getMessage() for r in caplog.records] == ["after main"]
