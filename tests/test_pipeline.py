"""End-to-end runs of the pipeline: outputs, interrupts, and the ICL sequence with the rgbd frontend."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slam.config import load_run_config
from slam.pipeline import run
from slam.trajectory import read_tum
from tests.make_data import write_tum_sequence


def _poses_in(path) -> int:
    return len(read_tum(path).timestamps)


def test_interrupt_keeps_what_was_computed(tmp_path, monkeypatch):
    seq = write_tum_sequence(tmp_path / "seq", n=8)
    cfg = load_run_config(None, data=seq, out=tmp_path / "out", overrides=["backend.sync=true"])
    from frontends.rgbd.frontend import RgbdFrontend

    original = RgbdFrontend.step

    def step(self, frame):
        if frame.index == 5:
            raise KeyboardInterrupt
        return original(self, frame)

    monkeypatch.setattr(RgbdFrontend, "step", step)
    result = run(cfg, progress=False)
    assert result.interrupted and result.n_frames == 5
    assert _poses_in(tmp_path / "out" / "trajectory.tum") == 5
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["frames"] == 5
    assert (tmp_path / "out" / "run.yaml").is_file()


def test_every_frame_gets_a_pose_with_stride(tmp_path):
    seq = write_tum_sequence(tmp_path / "seq", n=9)
    cfg = load_run_config(None, data=seq, out=tmp_path / "out", overrides=["dataset.stride=2", "backend.sync=true"])
    result = run(cfg, progress=False)
    assert result.n_frames == 5
    traj = read_tum(tmp_path / "out" / "trajectory.tum")
    assert len(traj.timestamps) == 5
    assert np.allclose(np.diff(traj.timestamps), 2 / 30.0, atol=1e-5)


def test_icl_first_frames_rgbd(tmp_path, icl_dir):
    """The rgbd frontend tracks the first 40 ICL frames to within 2 cm of the reference."""
    cfg = load_run_config(None, data=icl_dir, out=tmp_path / "out",
                          overrides=["frontend.name=rgbd", "dataset.max_frames=40", "backend.sync=true"])
    result = run(cfg, progress=False)
    assert _poses_in(tmp_path / "out" / "trajectory.tum") == 40
    assert result.metrics["n_matched"] == 40
    assert result.metrics["ate_rmse_se3"] < 0.02


@pytest.mark.slow
def test_icl_full_sequence_rgbd(tmp_path, icl_dir):
    """The acceptance run of the foundation: 211 poses and the ATE figures in metrics.json."""
    cfg = load_run_config(None, data=icl_dir, out=tmp_path / "out", overrides=["frontend.name=rgbd"])
    result = run(cfg, progress=False)
    assert _poses_in(tmp_path / "out" / "trajectory.tum") == 211
    print(f"ICL rgbd: ATE SE(3) {result.metrics['ate_rmse_se3']:.4f} m, Sim(3) {result.metrics['ate_rmse_sim3']:.4f} m")
    assert result.metrics["ate_rmse_se3"] < 0.02
