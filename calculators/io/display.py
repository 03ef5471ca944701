"""DisplayCalculator: shows frames in an OpenCV window; q, Esc or closing the window stops the graph."""
from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from pipelines import Calculator, Input, PipelineError, Stop, register_calculator
from pipelines.types import Frame

_HINT = "install framegraph[gui] (opencv-python instead of opencv-python-headless) or pass --no-display"
T = TypeVar("T")
_MAX_WINDOW = (1280, 800)  # a 4K frame opens scaled down to fit a laptop screen; the window stays resizable


class DisplayUnavailableError(PipelineError, RuntimeError):
    """No window can be opened here: OpenCV has no GUI backend, or there is no display."""


def display_available() -> tuple[bool, str]:
    """(True, backend) when a window can be opened, else (False, why); for the CLI to drop the display node.

    Checks without opening a window: a probe window would flash, and some GUI backends abort the process
    (not raise) when there is no display.
    """
    try:
        import cv2
    except ImportError as exc:
        return False, f"OpenCV is not installed ({exc}); {_HINT}"
    backend = _gui_backend(cv2)
    if backend == "NONE":
        return False, f"OpenCV has no GUI support here (opencv-python-headless); {_HINT}"
    if sys.platform.startswith("linux") and not os.environ.get("WAYLAND_DISPLAY"):
        display = os.environ.get("DISPLAY", "")
        if not display:
            return False, ("there is no display (DISPLAY and WAYLAND_DISPLAY are unset); run on a desktop "
                           "session, set DISPLAY, or pass --no-display")
        if not _x_server_reachable(display):
            return False, (f"the X display {display!r} does not answer (a stale DISPLAY, or ssh without -X?); "
                           "fix DISPLAY or pass --no-display")
    return True, backend or "unknown"


def _x_server_reachable(display: str) -> bool:
    """Can we connect to the X server named by DISPLAY? OpenCV's Qt backend aborts the whole process (no
    exception) when it cannot, so this is checked before any window is made."""
    import socket

    host, _, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not number.isdigit() or host.startswith("/"):
        return True  # a form we do not know: let the toolkit decide
    if host not in ("", "unix"):
        try:
            socket.create_connection((host, 6000 + int(number)), timeout=1.0).close()
            return True
        except OSError:
            return False
    # Xorg listens on an abstract socket and a file; sandboxes (Flatpak, containers) may pass only one.
    for address in (f"\0/tmp/.X11-unix/X{number}", f"/tmp/.X11-unix/X{number}"):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(1.0)
            try:
                sock.connect(address)
                return True
            except OSError:
                pass
    return False


def _gui_backend(cv2) -> str:
    """The "GUI:" entry of OpenCV's build information ("NONE" for the headless wheels), "" if not listed."""
    for line in cv2.getBuildInformation().splitlines():
        key, _, value = line.strip().partition(":")
        if key == "GUI" and value.strip():
            return value.strip().split()[0].upper()
    return ""


@register_calculator
class DisplayCalculator(Calculator):
    """Shows every frame in a window. Pressing q or Esc, or closing the window, stops the graph gracefully.

    Every OpenCV GUI call runs on one long-lived thread per process (see `on_gui_thread`), so any number of
    graphs, one after another or after an error, can show windows. `open` only checks that a window can
    exist (no window flashes), so a headless run fails before any frame is decoded.

    Ports:
        IMAGE (Frame) -> (sink, no outputs)

    Example node:
        # Watch the annotated video; the CLI drops this node with --no-display or when there is no display.
        - calculator: DisplayCalculator
          name: display
          inputs: {IMAGE: output_video}
          options: {title: framegraph}
    """

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """(True, backend) when a window can be opened here, else (False, why): run-graph asks this of the
        node its graph's ``cli: display:`` names, and leaves the node out when it says no."""
        return display_available()

    @dataclass(frozen=True)
    class Options:
        title: str = "framegraph"

        def __post_init__(self):
            if not self.title:
                raise ValueError("title must be a non-empty window title, e.g. 'framegraph'")

    IMAGE = Input[Frame]("IMAGE")

    def open(self, ctx):
        ok, why = display_available()
        if not ok:
            raise DisplayUnavailableError(f"display: {why}")
        self._window = False

    def process(self, ctx):
        # The BGR copy is made here, off the GUI thread, which every display window in the process shares.
        import cv2

        frame: Frame = ctx.get(self.IMAGE)
        event = on_gui_thread(self._show, cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))  # the frame stays as is
        if event is None:
            return None
        ctx.logger.info("display: %s; stopping the graph", event)
        ctx.stop_graph()
        # Stop consuming too: frames still in flight must not reopen the window the user just closed.
        return Stop

    def _show(self, bgr) -> str | None:
        """On the GUI thread: show one frame; returns why to stop, or None."""
        import cv2

        title = self.options.title
        if not self._window:
            try:
                # GUI_NORMAL: no Qt toolbar eating into the picture; NORMAL + KEEPRATIO: resizable, undistorted.
                cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
            except cv2.error as exc:
                raise DisplayUnavailableError(f"display: OpenCV could not open a window ({str(exc).strip()}); "
                                              f"{_HINT}") from exc
            height, width = bgr.shape[:2]
            scale = min(1.0, _MAX_WINDOW[0] / width, _MAX_WINDOW[1] / height)
            cv2.resizeWindow(title, max(1, round(width * scale)), max(1, round(height * scale)))
            self._window = True
        elif not _window_visible(cv2, title):
            return "the window was closed"
        cv2.imshow(title, bgr)
        if cv2.waitKey(1) & 0xFF in (ord("q"), ord("Q"), 27):
            return "q or Esc pressed"
        return None

    def _destroy(self) -> None:
        import cv2

        if self._window and _window_visible(cv2, self.options.title):
            cv2.destroyWindow(self.options.title)
            cv2.waitKey(1)  # let the toolkit process the destroy event
        self._window = False

    def close(self, ctx):
        if getattr(self, "_window", False):
            try:
                on_gui_thread(self._destroy, timeout=5.0)
            except Exception as exc:  # a window that cannot be destroyed must not hide the run's real outcome
                ctx.logger.warning("display: could not close the window: %s", exc)


def _window_visible(cv2, title: str) -> bool:
    try:
        return cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE) >= 1
    except cv2.error:  # Qt: a window the user closed is gone ("NULL guiReceiver"); GTK returns 0 or -1 instead
        return False


_gui_pool: ThreadPoolExecutor | None = None
_gui_lock = threading.Lock()


def on_gui_thread(fn: Callable[..., T], *args, timeout: float = 30.0) -> T:
    """Run `fn(*args)` on the process's one GUI thread and return its result.

    OpenCV's Qt backend binds its objects to the first thread that uses it and marshals later calls to that
    thread and waits. A graph's worker thread ends with the graph, so the next graph's window, or a close()
    run from the caller's thread after an error, would wait on a dead thread forever. One long-lived thread
    for every GUI call avoids that; a hung toolkit surfaces as a TimeoutError instead of a frozen graph.
    """
    global _gui_pool
    with _gui_lock:
        if _gui_pool is None:
            _gui_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="framegraph-gui")
    return _gui_pool.submit(fn, *args).result(timeout=timeout)
