"""Evaluation through evo: known transforms give known errors; parity with the evo_ape/evo_rpe tools."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from slam.evaluation import evaluate, format_table, plot_trajectories, run_eval
from slam.errors import DatasetError
from slam.geometry import pose_from_tq
from slam.trajectory import Trajectory, read_tum, write_kitti_trajectory, write_tum_trajectory

EVO_BIN = Path(sys.executable).parent


def loop_trajectory(n: int = 150, t0: float = 1000.0) -> Trajectory:
    """A wavy 3-D loop (radius ~2 m) at 30 Hz with a rotating camera."""
    s = np.linspace(0, 2 * np.pi, n, endpoint=False)
    positions = np.stack([2 * np.cos(s), 1.5 * np.sin(s), 0.3 * np.sin(3 * s)], axis=1)
    rotations = Rotation.from_euler("xyz", np.stack([0.2 * np.sin(2 * s), s, 0.1 * s], axis=1))
    return Trajectory(t0 + np.arange(n) / 30.0, pose_from_tq(positions, rotations.as_quat()))


def sim3(scale: float, rotvec, t) -> np.ndarray:
    S = np.eye(4)
    S[:3, :3] = scale * Rotation.from_rotvec(rotvec).as_matrix()
    S[:3, 3] = t
    return S


def transformed(traj: Trajectory, S: np.ndarray) -> Trajectory:
    """World change by similarity S applied to T_wc: rotation stays a rotation, positions get scaled."""
    s = np.cbrt(np.linalg.det(S[:3, :3]))
    R = S[:3, :3] / s
    poses = traj.poses.copy()
    poses[:, :3, :3] = R @ traj.poses[:, :3, :3]
    poses[:, :3, 3] = traj.positions @ S[:3, :3].T + S[:3, 3]
    return Trajectory(traj.timestamps.copy(), poses)


def test_similarity_transformed_ground_truth():
    gt = loop_trajectory()
    est = transformed(gt, sim3(2.5, [0.3, -0.2, 1.0], [4.0, -1.0, 2.0]))
    m = evaluate(est, gt)
    assert m["n_matched"] == 150
    assert m["ate_rmse_sim3"] < 1e-9
    assert m["sim3_scale"] == pytest.approx(1 / 2.5, rel=1e-9)
    assert m["rpe_trans_rmse"] < 1e-9 and m["rpe_rot_rmse_deg"] < 1e-5
    # Rigid alignment cannot undo the scale: est' = 2.5 * (p - c) around the centroid, so the error is
    # |2.5 - 1| times the RMS distance of the ground truth from its centroid.
    centred = gt.positions - gt.positions.mean(axis=0)
    expected = 1.5 * np.sqrt((centred**2).sum(axis=1).mean())
    assert m["ate_rmse_se3"] == pytest.approx(expected, rel=1e-6)


def test_rigidly_transformed_ground_truth_and_partial_matching():
    gt = loop_trajectory()
    est = transformed(gt, sim3(1.0, [0.0, 0.5, 0.0], [1.0, 2.0, 3.0]))
    keep = np.arange(0, 150, 2)
    est = Trajectory(est.timestamps[keep] + 0.004, est.poses[keep])  # every other pose, 4 ms late
    est.poses[3] = np.nan  # a missing estimate is ignored
    m = evaluate(est, gt)
    assert m["n_matched"] == 74 and m["n_estimate"] == 74 and m["n_ground_truth"] == 150
    assert m["ate_rmse_se3"] < 1e-9 and m["ate_rmse_sim3"] < 1e-9
    assert m["sim3_scale"] == pytest.approx(1.0)
    assert "kitti_t_err_pct" not in m


def test_no_time_overlap_is_an_error():
    gt = loop_trajectory()
    est = Trajectory(gt.timestamps + 100.0, gt.poses)
    with pytest.raises(DatasetError, match="associate"):
        evaluate(est, gt)


def straight_line(n: int = 1000, step: float = 1.0) -> Trajectory:
    """Forward along the camera z axis, ``step`` m per frame, with a 1 mm sideways wiggle (an exactly
    straight line makes the Umeyama alignment degenerate; the wiggle changes path lengths by ~1e-9)."""
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, 2, 3] = step * np.arange(n)
    poses[:, 0, 3] = 1e-3 * np.sin(2 * np.pi * np.arange(n) / 100)
    return Trajectory(np.arange(n) * 0.1, poses)


def kitti_segments(n: int, tol: float = 0.01) -> np.ndarray:
    """(nominal L, actual length) of the segments used on a 1 m-per-frame path of ``n`` frames.

    evo pairs each start frame with the frame whose path distance is nearest to L and keeps the pair if
    that distance is within ``tol * L``: near the end this accepts segments up to 1 % shorter than L.
    """
    rows = []
    for length in range(100, 900, 100):
        for i in range(n):
            actual = min(length, n - 1 - i)
            if length - actual <= tol * length:
                rows.append((length, actual))
    return np.array(rows, dtype=np.float64).reshape(-1, 2)


def test_kitti_segment_errors_known_values():
    gt = straight_line()
    segments = kitti_segments(len(gt))
    ratio = segments[:, 1] / segments[:, 0]
    # Constant heading error of theta about the camera y axis, positions exact: a segment of length d
    # has a translation error of 2 d sin(theta / 2) and no rotation error.
    theta = np.deg2rad(2.0)
    est = Trajectory(gt.timestamps, gt.poses.copy())
    est.poses[:, :3, :3] = Rotation.from_rotvec([0, theta, 0]).as_matrix()
    m = evaluate(est, gt, kitti=True)
    assert m["kitti_n_segments"] == len(segments)
    assert m["kitti_t_err_pct"] == pytest.approx(200 * np.sin(theta / 2) * ratio.mean(), rel=1e-6)
    assert m["kitti_t_err_pct"] == pytest.approx(200 * np.sin(theta / 2), rel=1e-3)
    assert m["kitti_r_err_deg_per_100m"] == pytest.approx(0.0, abs=1e-5)

    # Heading drifting by omega degrees per metre: a segment of length d has a rotation error of omega * d.
    omega = 0.002
    est = Trajectory(gt.timestamps, gt.poses.copy())
    est.poses[:, :3, :3] = Rotation.from_euler("y", omega * gt.positions[:, 2:3], degrees=True).as_matrix()
    m = evaluate(est, gt, kitti=True)
    assert m["kitti_r_err_deg_per_100m"] == pytest.approx(100 * omega * ratio.mean(), rel=1e-6)


def test_kitti_metrics_absent_for_short_trajectories():
    m = evaluate(loop_trajectory(), loop_trajectory(), kitti=True)
    assert m["kitti_t_err_pct"] is None and m["kitti_n_segments"] == 0
    assert "n/a" in format_table(m)


def noisy_estimate(gt: Trajectory, seed: int = 0) -> Trajectory:
    """A scaled, moved, noisy estimate of ``gt`` at slightly shifted stamps, missing a few poses."""
    rng = np.random.default_rng(seed)
    est = transformed(gt, sim3(0.7, [0.1, 0.2, -0.3], [0.5, 0.0, -1.0]))
    est.poses[:, :3, 3] += rng.normal(0, 0.02, (len(est), 3))
    est.poses[:, :3, :3] = est.poses[:, :3, :3] @ Rotation.from_rotvec(rng.normal(0, 0.01, (len(est), 3))).as_matrix()
    keep = np.sort(rng.choice(len(est), size=len(est) - 7, replace=False))
    return Trajectory(est.timestamps[keep] + rng.uniform(-0.004, 0.004, keep.size), est.poses[keep])


def evo_stats(tool: str, gt_path: Path, est_path: Path, zip_path: Path, *options: str) -> dict:
    subprocess.run(
        [str(EVO_BIN / tool), "tum", str(gt_path), str(est_path), *options, "--save_results", str(zip_path),
         "--no_warnings"],
        check=True, capture_output=True, text=True, timeout=120,
    )
    with zipfile.ZipFile(zip_path) as z:
        return json.loads(z.read("stats.json"))


@pytest.mark.skipif(not (EVO_BIN / "evo_ape").exists(), reason="evo command-line tools not installed")
def test_run_eval_matches_evo_command_line(tmp_path, capsys):
    gt = loop_trajectory(300)
    est = noisy_estimate(gt)
    gt_path, est_path = tmp_path / "gt.txt", tmp_path / "est.txt"
    write_tum_trajectory(gt_path, gt)
    write_tum_trajectory(est_path, est)

    m = run_eval(est_path, gt_path, tmp_path / "out")

    sim3_ref = evo_stats("evo_ape", gt_path, est_path, tmp_path / "ape_sim3.zip", "-as")
    se3_ref = evo_stats("evo_ape", gt_path, est_path, tmp_path / "ape_se3.zip", "-a")
    rpe_ref = evo_stats("evo_rpe", gt_path, est_path, tmp_path / "rpe.zip", "-as", "-d", "1", "-u", "f")
    assert m["ate_rmse_sim3"] > 0.01  # the noise is visible ...
    assert abs(m["ate_rmse_sim3"] - sim3_ref["rmse"]) < 1e-6  # ... and measured exactly as evo does
    assert abs(m["ate_rmse_se3"] - se3_ref["rmse"]) < 1e-6
    assert abs(m["rpe_trans_rmse"] - rpe_ref["rmse"]) < 1e-6
    assert m["sim3_scale"] == pytest.approx(1 / 0.7, rel=0.02)

    written = json.loads((tmp_path / "out" / "eval_metrics.json").read_text())
    assert written == m
    assert "ATE RMSE, Sim(3) aligned" in capsys.readouterr().out
    png = cv2.imread(str(tmp_path / "out" / "eval_trajectories.png"))
    assert png is not None and png.shape == (600, 600, 3)


@pytest.mark.skipif(not (EVO_BIN / "evo_ape").exists(), reason="evo command-line tools not installed")
def test_run_eval_matches_evo_on_real_ground_truth(icl_dir, tmp_path):
    gt_path = icl_dir / "groundtruth.txt"
    est_path = tmp_path / "est.txt"
    write_tum_trajectory(est_path, noisy_estimate(read_tum(gt_path), seed=5))
    m = run_eval(est_path, gt_path, tmp_path / "out")
    ref = evo_stats("evo_ape", gt_path, est_path, tmp_path / "ape.zip", "-as")
    assert m["n_matched"] == 204
    assert abs(m["ate_rmse_sim3"] - ref["rmse"]) < 1e-6


def test_run_eval_kitti_files(tmp_path):
    gt = straight_line(400, step=1.0)
    est = Trajectory(gt.timestamps, gt.poses.copy())
    est.poses[:, :3, 3] *= 3.0  # monocular scale, undone by the Sim(3) alignment
    write_kitti_trajectory(tmp_path / "gt.txt", gt)
    write_kitti_trajectory(tmp_path / "est.txt", est)
    m = run_eval(tmp_path / "est.txt", tmp_path / "gt.txt", tmp_path / "out")
    assert m["n_matched"] == 400 and m["sim3_scale"] == pytest.approx(1 / 3)
    assert m["kitti_t_err_pct"] == pytest.approx(0.0, abs=1e-6)
    assert m["kitti_n_segments"] == len(kitti_segments(400))


def test_plot_trajectories_writes_png(tmp_path):
    gt = loop_trajectory()
    path = tmp_path / "plots" / "traj.png"
    plot_trajectories(transformed(gt, sim3(2.0, [0, 0, 1], [1, 1, 1])), gt, path)
    image = cv2.imread(str(path))
    assert image is not None and image.std() > 0
    assert [p.name for p in path.parent.iterdir()] == ["traj.png"]


def test_short_kitti_runs_get_10m_segment_errors():
    gt = straight_line(60, step=1.0)  # 59 m: no 100 m segment
    theta = np.deg2rad(2.0)
    est = Trajectory(gt.timestamps, gt.poses.copy())
    est.poses[:, :3, :3] = Rotation.from_rotvec([0, theta, 0]).as_matrix()
    m = evaluate(est, gt, kitti=True)
    assert m["kitti_n_segments"] == 0 and m["kitti_t_err_pct"] is None
    assert m["rpe_10m_n_segments"] == 50  # the wiggle makes 10 frames a hair over 10 m: starts 0..49
    assert m["rpe_10m_t_err_pct"] == pytest.approx(200 * np.sin(theta / 2), rel=1e-3)
    assert m["rpe_10m_r_err_deg_per_100m"] == pytest.approx(0.0, abs=1e-5)
    assert "rpe_10m_t_err_pct" not in evaluate(est, gt, kitti=False)
    # frames 1.2 m apart (KITTI at driving speed): segments end at the first frame beyond 10 m (10.8 m)
    sparse = straight_line(60, step=1.2)
    est = Trajectory(sparse.timestamps, sparse.poses.copy())
    est.poses[:, 2, 3] *= 1.0 + np.arange(60) / 6000  # a growing scale error
    m = evaluate(est, sparse, kitti=True)
    assert m["rpe_10m_n_segments"] > 40 and m["rpe_10m_t_err_pct"] > 0
    long = evaluate(Trajectory(straight_line(200).timestamps, straight_line(200).poses), straight_line(200), kitti=True)
    assert long["kitti_n_segments"] > 0 and "rpe_10m_t_err_pct" not in long
