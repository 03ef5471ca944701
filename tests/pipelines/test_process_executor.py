"""The process executor with real worker processes: order with N > 1, one worker for a stateful node, frames
through shared memory bit-exact, worker errors with their traceback, a worker killed mid-run, validation, and
run-graph stopped by SIGINT / SIGTERM or losing a worker, each leaving no process and no /dev/shm block behind."""
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pipelines import (Calculator, CalculatorError, Graph, GraphValidationError, Input, Output, Packet,
                       PipelineError)
from pipelines.shared_frames import SharedReader, SharedWriter
from pipelines.types import Frame, Tensors
from support.process_calculators import checksums

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and /dev/shm")
#: Finding a run-graph process's workers, and whether they are gone, reads /proc.
needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc (Linux)")

TESTS = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS / "plugins"), os.environ.get("PYTHONPATH", "")])}


def graph(*nodes: str, processes: int = 2, outputs=("out",)) -> Graph:
    return Graph.from_string(f"inputs: [n]\noutputs: [{', '.join(outputs)}]\n"
                             f"executors: {{heavy: {{processes: {processes}}}}}\nnodes:\n"
                             + "".join(f"  - {node}\n" for node in nodes), "process_test.yaml")


def our_blocks(pid: int = None) -> list[str]:
    prefix = f"fg{pid or os.getpid()}"
    return [n for n in os.listdir("/dev/shm") if n.startswith(prefix)] if os.path.isdir("/dev/shm") else []


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(autouse=True)
def nothing_left_behind():
    before = set(multiprocessing.active_children())  # another module's, if any
    yield
    assert set(multiprocessing.active_children()) - before == set()
    assert our_blocks() == []


@pytest.mark.slow
def test_stateless_node_runs_calls_in_parallel_workers_and_emits_in_order():
    g = graph("{calculator: BusyCalculator, name: busy, inputs: {IN: n}, outputs: {OUT: out}, executor: heavy, "
              "max_in_flight: 2, options: {work: 2000, sleep: 0.01}}")
    out = g.run(inputs={"n": [Packet(t * 3, t) for t in range(30)]}, outputs=["out"], timeout=30)["out"]
    assert [p.timestamp for p in out] == [t * 3 for t in range(30)]
    assert [p.payload[0] for p in out] == list(range(30))
    pids = {p.payload[1] for p in out}
    assert len(pids) == 2 and os.getpid() not in pids
    calls = [p.payload[1:] for p in out]
    overlapping = sum(1 for a, b in zip(calls, calls[1:]) if a[0] != b[0] and b[1] < a[2])
    assert overlapping >= 5, calls  # neighbours ran at once, in the two workers
    assert any(b[2] < a[2] for a, b in zip(calls, calls[1:])), calls  # a later call ended first, waited its turn


def test_stateful_node_lives_in_one_worker_with_its_options_side_inputs_logs_and_problems(caplog):
    g = graph("{calculator: CountInWorker, name: count, inputs: {IN: n}, outputs: {OUT: out}, executor: heavy, "
              "options: {label: tally}}",
              "{calculator: TripleInWorkerCalculator, name: triple, inputs: {IN: n}, outputs: {OUT: tripled}, "
              "executor: heavy, options: {factor: 4}}", outputs=("out", "tripled"))
    with caplog.at_level(logging.INFO, logger="framegraph"):
        result = g.run(inputs={"n": range(25)}, outputs=["out", "tripled"], timeout=30,
                       side_inputs={"greeting": "hi", "callback": lambda p: None})  # the lambda stays behind
    out = result["out"]
    seen = [p.payload for p in out]
    assert [s[0] for s in seen] == list(range(1, 26))  # one instance saw every packet, in order
    assert len({s[1] for s in seen}) == 1 and seen[0][1] != os.getpid()
    assert {(s[2], s[3]) for s in seen} == {("tally", "hi")}
    assert any(r.name == "framegraph.count" and f"opened tally in process {seen[0][1]}" in r.getMessage()
               for r in caplog.records)
    assert g.last_problems == ['node "count": closed after 25 packets']
    tripled = [p.payload for p in result["tripled"]]
    assert [t[0] for t in tripled] == [n * 4 for n in range(25)]
    assert {t[1] for t in tripled} - {seen[0][1], os.getpid()}  # the least loaded worker: the other one


def test_frames_and_arrays_round_trip_bit_exact_through_shared_memory():
    rng = np.random.default_rng(7)
    big = Frame(rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8), index=3, source="clip.mp4")
    packets = [
        big,  # 6 MB: more than the first block, so the blocks grow
        Frame(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)),
        {"view": rng.random((40, 30), dtype=np.float32)[::3, ::2], "empty": np.zeros((0, 4)), "scalar": np.array(2.5),
         "flags": rng.random(17) > 0.5, "ints": np.arange(-5, 5, dtype=np.int64), "text": "not an array"},
        Tensors((rng.random((1, 128, 128, 3), dtype=np.float32), np.full((1, 896, 16), -0.0, np.float64)),
                ("a", "b")),
        np.array([(1, 2.0), (3, 4.0)], dtype=[("id", "<i4"), ("score", "<f8")]),
        [np.float16([1, np.nan, np.inf]), np.frombuffer(b"\x00\xff" * 8, dtype=">u2")],
    ]
    g = graph("{calculator: EchoCalculator, name: echo, inputs: {IN: n}, outputs: {OUT: out, FRAME: inverted}, "
              "executor: heavy}", processes=1, outputs=("out", "inverted"))
    result = g.run(inputs={"n": packets}, outputs=["out", "inverted"], timeout=30)
    for sent, packet in zip(packets, result["out"]):
        back, crcs_in_worker = packet.payload
        assert crcs_in_worker == checksums(sent)  # what the worker saw
        assert checksums(back) == checksums(sent)  # what came back
        _assert_same(sent, back)
    inverted = [p.payload for p in result["inverted"]]
    assert np.array_equal(inverted[0].image, 255 - big.image) and inverted[0].source == "clip.mp4"


def _assert_same(a, b):
    assert type(a) is type(b)
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == np.ascontiguousarray(b).tobytes()
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif hasattr(a, "__dataclass_fields__"):
        for name in a.__dataclass_fields__:
            _assert_same(getattr(a, name), getattr(b, name))
    else:
        assert a == b


def test_pixels_are_not_pickled():
    frame = Frame(np.full((720, 1280, 3), 9, np.uint8))
    writer, reader = SharedWriter(f"fg{os.getpid()}test_"), SharedReader()
    try:
        message = writer.encode({"IMAGE": frame})
        assert len(message.meta) < 400 and message.layout[0][1] == (720, 1280, 3)
        back = reader.decode(message)["IMAGE"]
        assert np.array_equal(back.image, frame.image) and back.image.flags.owndata  # a copy of its own
    finally:
        reader.close()
        writer.close()


def test_error_in_the_worker_fails_the_graph_in_its_turn_with_the_worker_traceback():
    g = graph("{calculator: FailAtCalculator, name: fail, inputs: {IN: n}, outputs: {OUT: out}, executor: heavy, "
              "max_in_flight: 2, options: {at: 6, delay: 0.002}}")
    got = []
    handle = g.start()
    handle.observe("out", lambda p: p is not None and got.append(p.timestamp))
    try:
        for t in range(20):
            handle.send("n", t, t)
        handle.close_inputs()
    except PipelineError:
        pass  # the graph failed meanwhile
    with pytest.raises(CalculatorError) as info:
        handle.wait(10)
    err = info.value
    assert (err.node, err.method, err.timestamp) == ("fail", "process", 6)
    assert str(err) == 'node "fail" (FailAtCalculator) failed in process() at timestamp 6: ZeroDivisionError: ' \
                       "division by zero"
    assert isinstance(err.original, ZeroDivisionError)
    text = err.original.remote_traceback
    assert "process_calculators.py" in text and "divide_by_zero_in_worker" in text and "1 / 0" in text
    assert text in str(err.original.__cause__)
    assert got == list(range(6))  # everything before the failure, in order, nothing after


def test_worker_killed_mid_run_fails_the_graph_fast_naming_the_node():
    g = graph("{calculator: DieAtCalculator, name: die, inputs: {IN: n}, outputs: {OUT: out}, executor: heavy, "
              "max_in_flight: 2, options: {at: 8}}")
    start = time.monotonic()
    with pytest.raises(CalculatorError) as info:
        g.run(inputs={"n": range(1000)}, outputs=["out"], timeout=20)
    assert time.monotonic() - start < 5
    err = info.value
    assert err.node == "die" and err.timestamp == 8
    assert 'of executor "heavy" died (killed by SIGKILL)' in str(err)


class LocalClass(Calculator):
    IN = Input[int]("IN")
    OUT = Output[int]("OUT")


def test_validation_of_process_executors():
    @dataclass(frozen=True)
    class Opts:
        x: int = 1

    class DefinedHere(Calculator):
        IN = Input[int]("IN")

    from pipelines import register_calculator
    register_calculator(DefinedHere, replace=True)
    with pytest.raises(GraphValidationError) as info:
        Graph.from_string(textwrap.dedent("""
            inputs: [n]
            executors: {heavy: {processes: 2}, both: {threads: 1, processes: 2}, zero: {processes: 0},
                        typo: {procs: 2}}
            nodes:
              - {calculator: BusyCalculator, name: wide, inputs: {IN: n}, executor: heavy, max_in_flight: 3}
              - {calculator: DefinedHere, name: local, inputs: {IN: n}, executor: heavy}
        """), "v.yaml")
    text = str(info.value)
    assert "executor 'both' has both 'threads' and 'processes'" in text
    assert "executor 'zero': 'processes' must be a positive integer, got 0" in text
    assert "unknown executor key 'procs'. Did you mean 'processes'?" in text
    assert "max_in_flight: 3 but executor 'heavy' has 2 processes; give it at least 3 (processes: 3)" in text
    assert "DefinedHere is defined inside a function, so a worker process cannot import it" in text


# ---------------------------------------------------------------- run-graph, a separate process


def _start_run_graph(tmp_path, delay="0.002"):
    events = tmp_path / "events.txt"
    path = tmp_path / "g.yaml"
    path.write_text(textwrap.dedent(f"""
        executors: {{heavy: {{processes: 2}}}}
        nodes:
          - {{calculator: CountingSource, name: src, outputs: {{OUT: n}}, options: {{count: 0, delay: {delay}}}}}
          # the pass-through runs in a worker process
          - {{calculator: SlowPassThrough, name: slow, inputs: {{IN: n}}, outputs: {{OUT: m}}, executor: heavy,
              options: {{delay: 0.001}}}}
          - {{calculator: FileEventSink, name: sink, inputs: {{IN: m}}, options: {{path: "{events}"}}}}
    """))
    proc = subprocess.Popen([sys.executable, "-m", "pipelines", str(path)], stderr=subprocess.PIPE, text=True,
                            env=ENV)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not events.exists() or events.read_text().count("packet") < 20):
        time.sleep(0.05)
    workers = [pid for pid in children_of(proc.pid) if b"resource_tracker" not in
               Path(f"/proc/{pid}/cmdline").read_bytes()]
    helpers = children_of(proc.pid)
    assert len(workers) == 1, workers  # one stateful node: one worker of the two is needed
    return proc, events, workers, helpers


def _assert_clean_exit(proc, err, helpers):
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(pid) for pid in helpers):
        time.sleep(0.05)
    assert not [pid for pid in helpers if alive(pid)], "worker or resource tracker left running"
    assert our_blocks(proc.pid) == []
    assert "Traceback" not in err and "leaked" not in err, err


@pytest.mark.slow
@needs_proc
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_run_graph_stopped_by_a_signal_finalizes_outputs_and_leaves_nothing(tmp_path, signum):
    proc, events, _, helpers = _start_run_graph(tmp_path)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert events.read_text().splitlines()[-1] == "close"
    _assert_clean_exit(proc, err, helpers)


@pytest.mark.slow
@needs_proc
def test_run_graph_losing_a_worker_fails_with_one_line_and_leaves_nothing(tmp_path):
    proc, events, workers, helpers = _start_run_graph(tmp_path)
    os.kill(workers[0], signal.SIGKILL)
    start = time.monotonic()
    _, err = proc.communicate(timeout=20)
    assert time.monotonic() - start < 5
    assert proc.returncode == 1, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith('error: node "slow" (SlowPassThrough) at timestamp '), err
    assert errors[0].endswith(f'worker process {workers[0]} of executor "heavy" died (killed by SIGKILL)'), err
    assert events.read_text().splitlines()[-1] == "close"  # the sink was closed: its output is complete
    _assert_clean_exit(proc, err, helpers)


@pytest.mark.slow
@needs_proc
def test_run_graph_killed_outright_leaves_no_worker_and_no_shared_memory(tmp_path):
    proc, _, _, helpers = _start_run_graph(tmp_path)
    proc.kill()  # no handler runs: the workers notice their parent is gone, unlink their blocks and exit
    _, err = proc.communicate(timeout=20)
    _assert_clean_exit(proc, err, helpers)
