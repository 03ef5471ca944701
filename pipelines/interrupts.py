"""Ctrl-C and SIGTERM for the command line: the first stops what is running (outputs finalized), a second quits at
once. Installed before anything starts, so a signal during start (an engine importing) never breaks that start."""
from __future__ import annotations

import os
import signal
import sys
import threading

EXIT_INTERRUPTED = 130


def install_stop_signals(running: dict, what: str = "") -> threading.Event:
    """SIGINT and SIGTERM set the returned event and call ``running["handle"].stop()`` once there is a handle
    (a `GraphHandle`, a `StreamSet`). `what` names what stops in the message ("every stream")."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        return interrupted

    def on_signal(signum, frame):
        if interrupted.is_set():
            os._exit(EXIT_INTERRUPTED)  # second Ctrl-C: leave now
        interrupted.set()
        print(f"\nstopping{' ' + what if what else ''}: finishing outputs (Ctrl-C again to quit at once)",
              file=sys.stderr)
        handle = running.get("handle")
        if handle is not None:
            handle.stop()

    signal.signal(signal.SIGINT, on_signal)
    # SIGTERM (kill, a service manager, a batch driver) stops the same way: outputs finalized, process-executor
    # workers stopped and their shared memory unlinked, rather than the process vanishing mid-write.
    signal.signal(signal.SIGTERM, on_signal)
    return interrupted
