"""End-to-end properties of the default rgbd SLAM run on real data: determinism with ``backend.sync=true``
and per-frame poses that are as accurate as the keyframes' (ICL sequence, first frames)."""

from __future__ import annotations

import pytest

from slam.config import load_run_config
from slam.evaluation import evaluate
from slam.pipeline import run
from slam.trajectory import read_tum
from tests.conftest import needs_icl


def run_icl(icl_dir, out, frames: int, *overrides: str):
    cfg = load_run_config(data=icl_dir, out=out, overrides=["frontend=rgbd", f"dataset.max_frames={frames}",
                                                            *overrides])
    return run(cfg, progress=False)


@needs_icl
@pytest.mark.slow
def test_sync_backend_gives_bit_identical_trajectories(icl_dir, tmp_path):
    texts = []
    for i in range(2):
        result = run_icl(icl_dir, tmp_path / f"run{i}", 60, "backend.sync=true")
        assert result.n_frames == 60
        texts.append(((tmp_path / f"run{i}" / "trajectory.tum").read_bytes(),
                      (tmp_path / f"run{i}" / "keyframes.tum").read_bytes()))
    assert texts[0] == texts[1]


@needs_icl
@pytest.mark.slow
def test_frames_between_keyframes_are_as_accurate_as_keyframes(icl_dir, tmp_path):
    result = run_icl(icl_dir, tmp_path / "run", 80, "backend.sync=true")
    gt = read_tum(icl_dir / "groundtruth.txt")
    every = read_tum(tmp_path / "run" / "trajectory.tum")
    keyframes = read_tum(tmp_path / "run" / "keyframes.tum")
    assert 3 <= len(keyframes) < len(every)
    # the keyframes' own error, and the error of all frames under the keyframes' alignment
    kf = evaluate(keyframes, gt)
    all_frames = evaluate(every, gt)
    assert all_frames["ate_rmse_se3"] <= 1.25 * kf["ate_rmse_se3"] + 0.002
    # frame-to-frame motion is smooth: no per-frame jitter beyond the odometry's own
    odo = run_icl(icl_dir, tmp_path / "odo", 80, "backend.sync=true", "backend=odometry")
    odo_rpe = evaluate(read_tum(tmp_path / "odo" / "trajectory.tum"), gt)["rpe_trans_rmse"]
    assert all_frames["rpe_trans_rmse"] <= odo_rpe * 1.05 + 1e-4
    assert result.metrics["backend"]["tracking_failures"] == 0
