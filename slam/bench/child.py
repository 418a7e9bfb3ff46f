"""Process entry of one benchmark run: ``python -m slam.bench.child RESULT_JSON [--max-memory MB] -- ARGS``.

Runs ``slam ARGS`` (normally ``run --data ... --out ...``) through :func:`slam.cli.main` in this
process and writes ``RESULT_JSON``: ``{"exit_code", "status", "error", "peak_gpu_mb"}``. An exception
that escapes the CLI is reported in one line; memory exhaustion (``MemoryError``, allocator messages)
is reported as ``status: "oom"``. A process killed from outside (OOM killer, timeout) writes nothing:
the parent classifies it from the exit signal.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import signal
import sys
from slam.atomic import write_text_atomic

#: Substrings of error messages that mean the process ran out of memory (CPU allocators, CUDA, loaders).
OOM_PATTERNS = ("out of memory", "cannot allocate memory", "can't allocate memory", "insufficient memory",
                "std::bad_alloc", "memoryerror", "failed to map segment")


def is_oom_message(text: str) -> bool:
    """True when ``text`` reads like a memory-exhaustion error."""
    low = text.lower()
    return any(p in low for p in OOM_PATTERNS)


class _Tee(io.TextIOBase):
    """Writes to a stream and keeps the last line that starts with ``error:`` (the CLI's one-line error)."""

    def __init__(self, stream):
        self.stream = stream
        self.error_line = ""

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.startswith("error: "):
                self.error_line = line[len("error: "):].strip()
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def _peak_gpu_mb() -> float | None:
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def run_child(result_path: str, cli_args: list[str], max_memory_mb: float | None = None) -> int:
    """Run the CLI with ``cli_args``, write the result file, return the exit code."""
    # SIGINT from the parent (a stopped sweep) must reach the run even when the parent was started in
    # the background with SIGINT ignored: the run then writes its partial outputs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if max_memory_mb:
        limit = int(max_memory_mb * 2**20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from slam.cli import main

    tee = _Tee(sys.stderr)
    status, error, code = "ok", "", 0
    try:
        with contextlib.redirect_stderr(tee):
            code = main(cli_args)
        if code != 0:
            error = tee.error_line or f"exit code {code}"
            status = "oom" if is_oom_message(error) else ("interrupted" if code == 130 else "failed")
    except MemoryError as exc:
        status, error, code = "oom", f"MemoryError: {exc}".rstrip(": "), 1
    except BaseException as exc:  # noqa: BLE001 - any crash of the run becomes one row of the table
        text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        status, error, code = ("oom" if is_oom_message(text) else "failed"), text, 1
        import traceback

        traceback.print_exc()
    payload = {"exit_code": code, "status": status, "error": error, "peak_gpu_mb": _peak_gpu_mb()}
    write_text_atomic(result_path, json.dumps(payload))
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(prog="python -m slam.bench.child")
    parser.add_argument("result", help="JSON file for the result")
    parser.add_argument("--max-memory", type=float, default=None, help="address-space limit in MiB")
    args = parser.parse_args(argv[:split])
    return run_child(args.result, argv[split + 1:], args.max_memory)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
