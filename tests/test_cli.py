"""The ``slam`` command through a subprocess: demo, eval (same ATE as evo_ape), frontends listing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from slam.trajectory import Trajectory, read_tum, write_tum_trajectory

REPO = Path(__file__).resolve().parents[1]


def slam(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "slam.cli", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, env=env, timeout=600)


def test_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    # the demo's default rendering (150 frames around the room), SLAM on its first 60 frames to stay quick
    proc = slam("demo", "--out", str(out), "--quiet", "dataset.max_frames=60")
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"ATE RMSE: ([0-9.]+) cm \(SE\(3\) aligned\)", proc.stdout)
    assert match, proc.stdout
    assert float(match.group(1)) < 5.0
    assert len(read_tum(out / "trajectory.tum").timestamps) == 60
    for name in ("run.yaml", "metrics.json", "keyframes.tum", "map.ply"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert abs(metrics["ate_rmse_se3"] * 100 - float(match.group(1))) < 0.006


def test_demo_renders_at_the_requested_size(tmp_path):
    import cv2

    out = tmp_path / "demo"
    proc = slam("demo", "--out", str(out), "--quiet", "--frames", "12", "--size", "160x120")
    assert proc.returncode == 0, proc.stderr
    first = sorted((out / "data" / "rgb").glob("*.png"))[0]
    assert cv2.imread(str(first)).shape == (120, 160, 3)
    assert len(read_tum(out / "trajectory.tum").timestamps) == 12
    assert "final optimisation" not in proc.stderr  # --quiet: no status lines
    bad = slam("demo", "--out", str(out), "--size", "640by480")
    assert bad.returncode == 2 and "WIDTHxHEIGHT" in bad.stderr
    # without --quiet the (possibly long) final optimisation is announced and timed
    again = slam("run", "--data", str(out / "data"), "--out", str(tmp_path / "again"), "frontend=rgbd")
    assert again.returncode == 0, again.stderr
    assert re.search(r"final optimisation of \d+ keyframes", again.stderr), again.stderr
    assert re.search(r"final optimisation done in [0-9.]+ s", again.stderr), again.stderr


def test_eval_matches_evo_ape(tmp_path):
    rng = np.random.default_rng(3)
    n = 60
    t = np.arange(n) / 30.0
    gt_poses = np.tile(np.eye(4), (n, 1, 1))
    gt_poses[:, 0, 3] = np.cos(t * 2)
    gt_poses[:, 1, 3] = np.sin(t * 3)
    gt_poses[:, 2, 3] = 0.1 * t
    est_poses = gt_poses.copy()
    est_poses[:, :3, 3] = 0.7 * gt_poses[:, :3, 3] + rng.normal(0, 0.01, (n, 3)) + [1, 2, 3]
    write_tum_trajectory(tmp_path / "gt.tum", Trajectory(t, gt_poses))
    write_tum_trajectory(tmp_path / "est.tum", Trajectory(t, est_poses))
    proc = slam("eval", str(tmp_path / "est.tum"), str(tmp_path / "gt.tum"), "--out", str(tmp_path / "ev"))
    assert proc.returncode == 0, proc.stderr
    ours = json.loads((tmp_path / "ev" / "eval_metrics.json").read_text())["ate_rmse_sim3"]
    assert (tmp_path / "ev" / "eval_trajectories.png").is_file()
    evo_ape = Path(sys.executable).parent / "evo_ape"
    ref = subprocess.run([str(evo_ape), "tum", str(tmp_path / "gt.tum"), str(tmp_path / "est.tum"), "-as"],
                         capture_output=True, text=True, timeout=120)
    assert ref.returncode == 0, ref.stderr
    rmse = float(re.search(r"rmse\s+([0-9.eE+-]+)", ref.stdout).group(1))
    assert abs(ours - rmse) < 1e-6


def test_frontends_listing():
    proc = slam("frontends")
    assert proc.returncode == 0
    for name in ("rgbd", "cut3r", "ttt3r", "ttsa3r", "tum", "kitti", "folder", "video"):
        assert name in proc.stdout


def test_overrides_may_be_mixed_with_options(tmp_path):
    from tests.make_data import write_tum_sequence

    seq = write_tum_sequence(tmp_path / "seq", n=3)
    proc = slam("run", "--data", str(seq), "dataset.max_frames=2", "--out", str(tmp_path / "o"), "dataset.stride=1",
                "--quiet", "--sync")
    assert proc.returncode == 0, proc.stderr
    assert len(read_tum(tmp_path / "o" / "trajectory.tum").timestamps) == 2
    bad = slam("run", "--data", str(seq), "--bogus")
    assert bad.returncode == 2 and "--bogus" in bad.stderr
