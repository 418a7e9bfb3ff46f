"""Running the ``slam`` command in a subprocess for the hardening corpus (exit code, stderr, files)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def env(**extra: str) -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = str(REPO) + os.pathsep + out.get("PYTHONPATH", "")
    out.setdefault("OMP_NUM_THREADS", "1")
    out.update(extra)
    return out


def slam(*args: str, timeout: float = 120, **extra_env: str) -> subprocess.CompletedProcess:
    """``python -m slam.cli ARGS`` (text output captured)."""
    return subprocess.run([sys.executable, "-m", "slam.cli", *map(str, args)], cwd=REPO, env=env(**extra_env),
                          capture_output=True, text=True, timeout=timeout)


def tool(name: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python tools/NAME.py ARGS``."""
    return subprocess.run([sys.executable, str(REPO / "tools" / f"{name}.py"), *map(str, args)], cwd=REPO,
                          env=env(), capture_output=True, text=True, timeout=timeout)


def assert_clean_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, no traceback, an ``error:`` line containing every needle; returns that line."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, proc.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]
