"""Shared sessions batching the frames of several streams: real ONNX Runtime sessions of the shipped face
detector, called from several threads as several streams' inference nodes call them."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from calculators.inference.shared_sessions import ACTIVE_WINDOW_S, Batching, SessionPool  # noqa: E402
from pipelines.engines import EngineOptions, get_engine  # noqa: E402

MODELS = Path(__file__).resolve().parents[3] / "assets" / "models"
BATCH_MODEL = MODELS / "face_detection_short_range_batch.onnx"
FIXED_MODEL = MODELS / "face_detection_short_range.onnx"
pytestmark = pytest.mark.onnxruntime


def load(path: Path):
    return lambda: get_engine("onnxruntime").load(path, EngineOptions(threads=1))


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-1, 1, (n, 1, 8, 8, 3)).astype(np.float32)
    return [np.kron(c, np.ones((1, 16, 16, 1), np.float32)) for c in coarse]


def call_together(sessions, inputs_per_session, rounds: int) -> list[list]:
    """Each session called from its own thread, `rounds` times, released together each round."""
    results = [[] for _ in sessions]
    barrier = threading.Barrier(len(sessions))

    def stream(i):
        for r in range(rounds):
            barrier.wait()
            results[i].append(sessions[i].run([inputs_per_session[i][r]]))

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(len(sessions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


@pytest.mark.slow
def test_frames_of_several_streams_run_in_one_call_with_each_streams_own_result():
    pool = SessionPool()
    batching = Batching(max_batch=8, timeout_s=0.5)  # long: the four threads always meet in one batch
    sessions = [pool.acquire("face", load(BATCH_MODEL), batching)[0] for _ in range(4)]
    model = sessions[0].model
    assert model.batchable and pool.loads == 1
    inputs = [frames(3, seed=i) for i in range(4)]
    results = call_together(sessions, inputs, rounds=3)
    alone = get_engine("onnxruntime").load(FIXED_MODEL, EngineOptions(threads=1))
    for i in range(4):
        for r in range(3):
            expected = alone.run([inputs[i][r]])
            assert [o.shape for o in results[i][r]] == [(1, 896, 16), (1, 896, 1)]
            for got, want in zip(results[i][r], expected):
                np.testing.assert_array_equal(got, want)
    assert model.rows == 12 and model.calls < 12 and model.largest_batch > 1
    results[0][0][0][:] = 0  # a stream's result is its own array, not a view into the others'
    assert results[1][0][0].any()
    for s in sessions:
        s.close()
    assert pool.users() == {}


def test_no_more_rows_in_a_call_than_max_batch():
    pool = SessionPool()
    sessions = [pool.acquire("face", load(BATCH_MODEL), Batching(max_batch=2, timeout_s=0.5))[0] for _ in range(5)]
    results = call_together(sessions, [frames(2, seed=i) for i in range(5)], rounds=2)
    model = sessions[0].model
    assert all(len(r) == 2 for r in results)
    assert model.rows == 10 and model.largest_batch == 2 and model.calls >= 5
    for s in sessions:
        s.close()


def test_a_model_with_a_fixed_batch_runs_one_frame_per_call():
    pool = SessionPool()
    sessions = [pool.acquire("face", load(FIXED_MODEL), Batching(max_batch=8))[0] for _ in range(3)]
    assert not sessions[0].model.batchable
    results = call_together(sessions, [frames(2, seed=i) for i in range(3)], rounds=2)
    assert all(len(r) == 2 for r in results)
    assert sessions[0].model.calls == 6 and sessions[0].model.largest_batch == 0
    for s in sessions:
        s.close()


def test_a_stream_that_stops_calling_is_not_waited_for():
    pool = SessionPool()
    batching = Batching(max_batch=8, timeout_s=0.4)
    live, dead = (pool.acquire("face", load(BATCH_MODEL), batching)[0] for _ in range(2))
    dead.run(frames(1)[:1])  # called once, then never again (a camera that went away)
    time.sleep(ACTIVE_WINDOW_S + 0.05)
    start = time.monotonic()
    for frame in frames(5):
        live.run([frame])
    assert time.monotonic() - start < 0.4  # five calls, not one timeout each
    live.close(), dead.close()


def test_an_engine_error_reaches_every_stream_of_the_batch():
    pool = SessionPool()
    sessions = [pool.acquire("face", load(BATCH_MODEL), Batching(max_batch=8, timeout_s=0.5))[0]
                for _ in range(3)]
    wrong = np.zeros((1, 64, 64, 3), np.float32)  # the model takes 128x128
    errors = []

    def stream(s):
        try:
            s.run([wrong])
        except Exception as exc:  # noqa: BLE001 - the test looks at what came back
            errors.append(exc)

    threads = [threading.Thread(target=stream, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(errors) == 3 and not any(t.is_alive() for t in threads)
    ok = sessions[0].run(frames(1))  # and the session still works afterwards
    assert ok[0].shape == (1, 896, 16)
    for s in sessions:
        s.close()


@pytest.mark.parametrize("concurrent", [True, False])
def test_unbatched_calls_overlap_only_on_a_session_that_takes_concurrent_callers(concurrent):
    pool = SessionPool()
    sessions = [pool.acquire("face-unbatched", load(FIXED_MODEL), Batching())[0] for _ in range(2)]
    model = sessions[0].model
    assert model.inner.concurrent is True  # ONNX Runtime on the CPU
    model.inner.concurrent = concurrent
    real_run, inside, most = model.inner.run, [0], [0]
    lock = threading.Lock()

    def counted_run(arrays):  # the real session's run, with how many callers are inside it at once
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        try:
            time.sleep(0.005)  # wide enough that two callers released together meet inside
            return real_run(arrays)
        finally:
            with lock:
                inside[0] -= 1

    model.inner.run = counted_run
    inputs = [frames(4, seed=i) for i in range(2)]
    results = call_together(sessions, inputs, rounds=4)
    alone = get_engine("onnxruntime").load(FIXED_MODEL, EngineOptions(threads=1))
    for i in range(2):
        for r in range(4):
            for got, want in zip(results[i][r], alone.run([inputs[i][r]])):
                np.testing.assert_array_equal(got, want)
    assert most[0] == (2 if concurrent else 1) and model.calls == 8
    for s in sessions:
        s.close()


def test_an_engine_that_takes_callers_side_by_side_runs_a_batch_per_core_at_once(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    pool = SessionPool()
    first, second = (pool.acquire("face", load(BATCH_MODEL), Batching(max_batch=8, timeout_s=0))[0] for _ in range(2))
    model = first.model
    assert model.inner.concurrent and model.max_leaders == 2
    engine_run, started = model.inner.run, threading.Event()
    running, most, lock = 0, 0, threading.Lock()

    def counted(arrays):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        started.set()
        try:
            time.sleep(0.2)  # the first batch is still running when the second stream calls
            return engine_run(arrays)
        finally:
            with lock:
                running -= 1

    model.inner.run = counted
    inputs = frames(2)
    results = {}
    t = threading.Thread(target=lambda: results.setdefault("first", first.run([inputs[0]])))
    t.start()
    assert started.wait(10)
    results["second"] = second.run([inputs[1]])
    t.join(10)
    assert most == 2, "the second stream's frame waited for the first's batch instead of running beside it"
    alone = get_engine("onnxruntime").load(FIXED_MODEL, EngineOptions(threads=1))
    for name, frame in (("first", inputs[0]), ("second", inputs[1])):
        for got, want in zip(results[name], alone.run([frame])):
            np.testing.assert_array_equal(got, want)
    first.close(), second.close()
