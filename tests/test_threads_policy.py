"""The CLI and the frontend benchmark set a passive OpenMP wait policy before torch loads, unless the
user's environment chose one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROBE = ("import os, sys; from slam import cli; cli.main(['frontends']); "
         "print('policy=' + os.environ['OMP_WAIT_POLICY']); print('torch' in sys.modules)")


def run_probe(env_policy: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    if env_policy is not None:
        env["OMP_WAIT_POLICY"] = env_policy
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_cli_defaults_to_passive():
    assert "policy=PASSIVE" in run_probe(None)


def test_cli_keeps_the_users_choice():
    assert "policy=ACTIVE" in run_probe("ACTIVE")


def test_benchmark_sets_policy_before_torch():
    source = (REPO / "tools" / "bench_frontend.py").read_text()
    assert source.index('os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")') < source.index("import torch")
