"""Stopping a run on request: SIGTERM (a scheduler's preemption) or SIGINT (Ctrl-C).

The first signal asks the training loop to finish its current step, save a checkpoint and
stop with ``Preempted`` (the command line exits with ``EXIT_PREEMPTED``); a second signal
exits at once, without saving (the last complete checkpoint stays intact).
"""

import os
import signal
import sys
import threading

EXIT_PREEMPTED = 75  # sysexits' EX_TEMPFAIL: stopped on request, run the same command again
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
    """Training stopped on a signal after saving a checkpoint."""


class StopRequests:
    """While entered (in the main thread), SIGTERM and SIGINT set ``requested`` instead of
    killing the process; the previous handlers come back on exit."""

    def __init__(self):
        self.signal_name: str | None = None
        self.previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def handle(self, signum, _frame) -> None:
        name = signal.Signals(signum).name
        if self.requested:
            os.write(2, f"\n{name} again: exiting now, without saving\n".encode())
            os._exit(128 + signum)
        self.signal_name = name
        sys.stderr.write(f"\n{name}: finishing the current step and saving a checkpoint "
                         f"(send {name} again to exit at once)\n")

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self.handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}
