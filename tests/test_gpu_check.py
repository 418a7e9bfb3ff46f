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


def test_report_collects_benchmarks_and_compares_compiled_runs(tmp_path):
    import json

    from tests.conftest import load_tool

    report_tool = load_tool("gpu_report")
    cut3r = {"ttsa3r": {"ms_per_frame": 25.0, "frames_per_second": 40.0, "peak_mem_mb": 6000.0,
                        "mem_series_mb": [6000.0] * 10 + [6000.0, 6060.0]}}
    compiled = {"ttsa3r": dict(cut3r["ttsa3r"], ms_per_frame=20.0, frames_per_second=50.0)}
    stream3r = {"window": {"ms_per_frame": 30.0, "peak_mem_mb": 6500.0, "peak_mb": [6500.0] * 12, "ms": [30.0]}}
    for name, data in (("bf16", cut3r), ("bf16_compiled", compiled), ("stream3r", stream3r)):
        (tmp_path / f"bench_{name}.json").write_text(json.dumps(data))
    (tmp_path / "slam_ttsa3r").mkdir()
    (tmp_path / "slam_ttsa3r" / "metrics.json").write_text(json.dumps({"frames_per_second": 26.5}))
    assert report_tool.main([str(tmp_path), "--started", "0"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["benchmarks"]["bf16"]["ttsa3r"]["mem_drift_pct"] == pytest.approx(1.0)
    assert report["benchmarks"]["stream3r"]["window"]["frames_per_second"] == pytest.approx(1e3 / 30)
    table = (tmp_path / "report.md").read_text()
    assert "| bf16_compiled | ttsa3r | 50.0 | 6000 | 1.00 | 1.25 |" in table
    assert "26.5 frames/s" in table
