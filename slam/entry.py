"""The error contract shared by the ``slam`` command and the user-facing scripts in ``tools/``.

* a :class:`~slam.errors.SlamError` (bad file, data, config, checkpoint) or an ``OSError`` (a path that
  cannot be read or written) ends with one line ``error: PATH: problem`` on stderr and exit code 2;
* Ctrl-C ends with ``interrupted`` and exit code 130;
* any other exception is a bug: one line ``error: internal error ...`` and exit code 1;
* ``--debug`` prints the full traceback before that line (and enables debug logging).

Scripts use :func:`tool_main`: ``if __name__ == "__main__": sys.exit(tool_main(main))``.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import traceback
from typing import Any, Callable

from slam.errors import SlamError

EXIT_USAGE = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def report_errors(fn: Callable[[], Any], debug: bool = False, process_exit: bool = False) -> int:
    """Run ``fn()`` under the error contract above; returns the exit code (``fn``'s int result, else 0).

    ``process_exit``: the caller exits the process with the returned code (a program's entry point, not a
    call from other code). Then, once the run ended because of Ctrl-C, further Ctrl-C presses are ignored:
    the process is already on its way out with exit code 130, and a late press must not kill it half-way
    (the interpreter would die by the signal instead of exiting with 130).
    """
    try:
        result = fn()
        code = result if isinstance(result, int) and not isinstance(result, bool) else 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - every error ends in one line (bugs too, unless --debug)
        if debug:
            traceback.print_exc()
        message, code = describe(exc, debug)
        print(f"error: {_one_line(message)}", file=sys.stderr)
    if process_exit and code == EXIT_INTERRUPTED and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code


def describe(exc: BaseException, debug: bool = False) -> tuple[str, int]:
    """(one-line message, exit code) of an exception under the contract of this module."""
    if isinstance(exc, SlamError):
        return str(exc), EXIT_USAGE
    if isinstance(exc, OSError):  # e.g. an output folder that cannot be written, a full disk
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return f"{where}{exc.strerror or exc}", EXIT_USAGE
    hint = "" if debug else "; rerun with --debug for the traceback"
    return f"internal error ({type(exc).__name__}: {exc}){hint}", EXIT_INTERNAL


def tool_main(main: Callable[[list[str]], Any], argv: list[str] | None = None) -> int:
    """Run a script's ``main(argv)`` under the error contract; ``--debug`` anywhere in ``argv`` is consumed.

    ``argv`` None: the process's own arguments (the script's entry point; see ``process_exit`` of
    :func:`report_errors`)."""
    from_process = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return report_errors(lambda: main(argv), debug, process_exit=from_process)
