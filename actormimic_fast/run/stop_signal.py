"""SIGTERM as a request to stop training cleanly: `kill <pid>` (or the end of a session that sends SIGTERM)
stops a run at its next progress row with a checkpoint written, so nothing is lost and --resume goes on.

Contract: install() replaces SIGTERM's handler only when called on the main thread (signal handlers can
only live there; elsewhere, e.g. a test calling the trainer from a thread, SIGTERM keeps its default and
the request never comes); the handler only sets a flag, which the training loop reads between steps;
uninstall() puts the previous handler back. A second SIGTERM while the first is pending kills the process
as the default would, for a run that is stuck.
"""

from __future__ import annotations

import os
import signal
import threading


class StopRequest:
    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def install(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def _on_sigterm(self, signum, frame) -> None:
        if self.requested:                      # the second one: stop now, as SIGTERM's default does
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        self.requested = True
