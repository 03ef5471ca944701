"""Node latencies are kept in fixed memory: the count covers the run, the percentiles its latest calls."""
from pipelines.stats import LatencyWindow


def test_the_window_keeps_the_latest_calls_and_counts_them_all():
    window = LatencyWindow(size=4)
    for i in range(10):
        window.append(float(i))
    assert len(window) == 10
    assert sorted(window.recent()) == [6.0, 7.0, 8.0, 9.0]
    assert len(window._ring) == 4  # memory does not grow with the run


def test_a_short_run_keeps_every_call():
    window = LatencyWindow(size=8)
    for x in (0.3, 0.1, 0.2):
        window.append(x)
    assert sorted(window.recent()) == [0.1, 0.2, 0.3] and len(window) == 3
