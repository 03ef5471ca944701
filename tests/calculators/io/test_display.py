"""DisplayCalculator: a clear error where no window can open; a real window (and q to stop) where one can."""
import shutil
import subprocess
import threading
import time

import pytest

from calculators.io.display import DisplayUnavailableError, display_available
from media import astronaut_pan_clip, require
from pipelines import CalculatorError, Graph, calculator
from pipelines.registry import unregister_calculator
from pipelines.types import Frame

cv2 = pytest.importorskip("cv2")
pytest.importorskip("av")

AVAILABLE, WHY = display_available()
TITLE = "framegraph-test"


def display_graph(source, **options) -> str:
    opts = "".join(f", {k}: {str(v).lower()}" for k, v in options.items())
    return f"""
nodes:
  - calculator: VideoSourceCalculator
    outputs: {{IMAGE: video}}
    options: {{source: '{source}'{opts}}}
  - calculator: DisplayCalculator
    inputs: {{IMAGE: video}}
    options: {{title: {TITLE}}}
"""


def test_display_available_says_why():
    ok, why = display_available()
    assert isinstance(ok, bool) and isinstance(why, str) and why


@pytest.mark.skipif(AVAILABLE, reason="a window can be opened here")
def test_no_gui_or_no_display_fails_at_open_with_a_hint():
    clip = require(astronaut_pan_clip)
    with pytest.raises(CalculatorError) as info:
        Graph.from_string(display_graph(clip, max_frames=3)).run(timeout=30)
    assert info.value.method == "open" and isinstance(info.value.original, DisplayUnavailableError)
    message = str(info.value.original)
    assert message.startswith("display: ") and "--no-display" in message


@pytest.mark.gui
@pytest.mark.skipif(not AVAILABLE, reason=f"no window possible: {WHY}")
def test_window_shows_frames_and_q_stops_the_graph():
    clip = require(astronaut_pan_clip)
    Graph.from_string(display_graph(clip, max_frames=10)).run(timeout=30)

    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed: cannot press q in the window")
    graph = Graph.from_string(display_graph(clip, realtime=True))  # 3.6 s at 25 fps unless stopped
    pressed = threading.Event()

    def press_q():
        time.sleep(1.0)
        found = subprocess.run(["xdotool", "search", "--name", TITLE], check=False, capture_output=True, text=True)
        for window in found.stdout.split():
            # Focus, then a real (XTEST) key press: toolkits ignore keys sent to a window with XSendEvent.
            subprocess.run(["xdotool", "windowfocus", "--sync", window], check=False, capture_output=True, timeout=5)
            subprocess.run(["xdotool", "key", "q"], check=False, capture_output=True, timeout=5)
            pressed.set()

    start = time.monotonic()
    thread = threading.Thread(target=press_q, daemon=True)
    thread.start()
    graph.run(timeout=30)
    elapsed = time.monotonic() - start
    thread.join(5)
    assert pressed.is_set(), f"no window named {TITLE!r} was found"
    assert elapsed < 3.0, f"q did not stop the graph (ran {elapsed:.1f} s of the 3.6 s clip)"


@pytest.mark.gui
@pytest.mark.skipif(not AVAILABLE, reason=f"no window possible: {WHY}")
def test_windows_close_after_an_error_and_open_again():
    # close() runs on the caller's thread after an error, and the next graph has new worker threads: neither may
    # wait on a GUI thread that has gone (the Qt backend's failure mode).
    clip = require(astronaut_pan_clip)

    @calculator(name="FailAtFrame5", replace=True)
    def fail_at_frame_5(IMAGE: Frame) -> None:
        if IMAGE.index == 5:
            raise RuntimeError("boom at frame 5")

    failing = display_graph(clip) + """
  - calculator: FailAtFrame5
    inputs: {IMAGE: video}
"""
    try:
        for _ in range(2):
            with pytest.raises(CalculatorError, match="boom at frame 5"):
                Graph.from_string(failing).run(timeout=30)
    finally:
        unregister_calculator("FailAtFrame5")
    Graph.from_string(display_graph(clip, max_frames=5)).run(timeout=30)
