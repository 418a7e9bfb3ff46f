"""Signals that end a run early (Ctrl-C = SIGINT, ``kill``/``timeout``/schedulers = SIGTERM), handled alike.

:func:`interrupt_signals` turns SIGTERM (and SIGHUP where it exists) into ``KeyboardInterrupt`` inside its
block, exactly as Python already does for SIGINT, and records which signal arrived so that the command can
exit with ``128 + signal number`` (130 for SIGINT, 143 for SIGTERM). The pipeline catches the exception,
skips the step that was running and still writes everything computed so far.

:func:`pause_point` is a test hook: when the environment variable ``TTSA_SLAM_PAUSE_AT`` names the phase
being entered (``frame:N`` = after N frames, ``finalize``, ``export``), the process touches the file named by
``TTSA_SLAM_PAUSE_FILE`` and sleeps up to 60 s, so that a test can send a real signal during that phase.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Iterator

#: signals handled like Ctrl-C during a run
_HANDLED = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class SignalState:
    """Which interrupting signal arrived first (``signum`` None = none yet)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def note(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum

    @property
    def exit_code(self) -> int:
        """Shell convention ``128 + signal number``; 130 (SIGINT) when the cause is unknown."""
        return 128 + (self.signum or int(signal.SIGINT))


@contextlib.contextmanager
def interrupt_signals(state: SignalState) -> Iterator[SignalState]:
    """Inside the block SIGTERM/SIGHUP raise ``KeyboardInterrupt`` like SIGINT; ``state`` records the signal.

    Only the main thread can install handlers; elsewhere the block changes nothing. Signals that are ignored
    when the block starts (``nohup``, background jobs) stay ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum, _frame):
        state.note(signum)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous_int = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):
        state.note(signum)
        if callable(previous_int) and previous_int is not signal.default_int_handler:
            return previous_int(signum, frame)
        raise KeyboardInterrupt("SIGINT")

    # a signal the parent chose to ignore (``nohup`` ignores SIGHUP, background jobs SIGINT) stays ignored
    saved = {sig: old for sig in _HANDLED if (old := signal.getsignal(sig)) is not signal.SIG_IGN}
    if previous_int is not signal.SIG_IGN:
        saved[signal.SIGINT] = previous_int
    try:
        for sig in saved:
            signal.signal(sig, on_sigint if sig == signal.SIGINT else handler)
        yield state
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


def pause_point(phase: str) -> None:
    """Test hook (see the module docstring); does nothing unless ``TTSA_SLAM_PAUSE_AT`` equals ``phase``."""
    if os.environ.get("TTSA_SLAM_PAUSE_AT") != phase:
        return
    marker = os.environ.get("TTSA_SLAM_PAUSE_FILE")
    if marker:
        Path(marker).write_text(phase)
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        time.sleep(0.05)
