"""DisplayCalculator: shows frames in an OpenCV window; q, Esc or closing the window stops the graph."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from pipelines import Calculator, Input, PipelineError, Stop, register_calculator
from pipelines.types import Frame

_HINT = "install framegraph[gui] (opencv-python instead of opencv-python-headless) or pass --no-display"
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
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, ("there is no display (DISPLAY and WAYLAND_DISPLAY are unset); run on a desktop session, "
                       "set DISPLAY, or pass --no-display")
    return True, backend or "unknown"


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

    The window is created on the node's own thread at the first frame (GUI toolkits want one thread); `open`
    only checks that a window can exist, so a headless run fails before any frame is decoded.

    Ports:
        IMAGE (Frame) -> (sink, no outputs)

    Example node:
        # Watch the annotated video; the CLI drops this node with --no-display or when there is no display.
        - calculator: DisplayCalculator
          name: display
          inputs: {IMAGE: output_video}
          options: {title: framegraph}
    """

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
        import cv2

        frame: Frame = ctx.get(self.IMAGE)
        title = self.options.title
        if not self._window:
            self._create_window(cv2, frame)
        elif not self._window_open(cv2):
            return self._stop(ctx, "the window was closed")
        cv2.imshow(title, cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))  # a new array: the frame stays as is
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), ord("Q"), 27):
            return self._stop(ctx, "q or Esc pressed")
        return None

    def _create_window(self, cv2, frame: Frame) -> None:
        title = self.options.title
        try:
            # GUI_NORMAL: no Qt toolbar eating into the picture; NORMAL + KEEPRATIO: resizable, undistorted.
            cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        except cv2.error as exc:
            raise DisplayUnavailableError(f"display: OpenCV could not open a window ({str(exc).strip()}); "
                                          f"{_HINT}") from exc
        scale = min(1.0, _MAX_WINDOW[0] / frame.width, _MAX_WINDOW[1] / frame.height)
        cv2.resizeWindow(title, max(1, round(frame.width * scale)), max(1, round(frame.height * scale)))
        self._window = True

    def _window_open(self, cv2) -> bool:
        try:
            return cv2.getWindowProperty(self.options.title, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error:  # Qt: the window the user closed is gone ("NULL guiReceiver"); GTK returns 0 or -1
            return False

    def _stop(self, ctx, why: str):
        ctx.logger.info("display: %s; stopping the graph", why)
        ctx.stop_graph()
        # Stop consuming too: frames still in flight must not reopen the window the user just closed.
        return Stop

    def close(self, ctx):
        if getattr(self, "_window", False):
            import cv2

            try:
                cv2.destroyWindow(self.options.title)
                cv2.waitKey(1)  # let the GUI toolkit process the destroy event
            except cv2.error:
                pass  # already gone with the user's close click
            self._window = False
