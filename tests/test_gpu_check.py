"""``tools/gpu_check.sh`` on a machine without CUDA stops at once with a one-line message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_gpu_check_needs_cuda(tmp_path):
    env = dict(os.environ, GPU_CHECK_PYTHON=sys.executable, GPU_CHECK_OUT=str(tmp_path / "out"),
               PYTHONPATH=str(REPO))
    proc = subprocess.run(["bash", str(REPO / "tools" / "gpu_check.sh")], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "CUDA" in lines[0]
    assert proc.stdout == "" and not (tmp_path / "out").exists()
