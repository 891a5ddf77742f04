"""SIGTERM and SIGHUP end a run the way Ctrl-C does.

A scheduler (SLURM's time limit, `kill`, a closed terminal) asks a process to stop with SIGTERM or
SIGHUP; Python's default would end it at once, leaving a manifest that says `running` forever.
While a run is in progress they raise `RunInterrupted`, a KeyboardInterrupt, so the run is marked
`interrupted` and its partial tables keep their partial names.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class RunInterrupted(KeyboardInterrupt):
    """The process was asked to stop by a signal; the message names it."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


def _raise(signum: int, frame) -> None:
    raise RunInterrupted(signum)


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise RunInterrupted (main thread only: Python delivers
    signals there, and a run in a worker thread leaves them to its process)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _raise) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def exit_code(err: KeyboardInterrupt) -> int:
    """The shell's convention: 128 + the signal's number (130 for Ctrl-C)."""
    return 128 + (err.signum if isinstance(err, RunInterrupted) else signal.SIGINT)
