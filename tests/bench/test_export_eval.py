"""``slam export colmap`` (read back by a small COLMAP text parser) and ``slam eval``'s evo-style forms."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slam.cli import main
from slam.trajectory import Trajectory, write_tum_trajectory
from tests.make_data import write_tum_sequence


def quat_wxyz_to_rotmat(q: np.ndarray) -> np.ndarray:
    """Rotation matrix of a unit quaternion (w, x, y, z), Hamilton convention as COLMAP uses."""
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def read_colmap_text(folder):
    """(cameras {id: (model, w, h, params)}, images [(id, qwxyz, t, camera_id, name)], points (N,6))."""
    cameras, images, points = {}, [], []
    for line in (folder / "cameras.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            f = line.split()
            cameras[int(f[0])] = (f[1], int(f[2]), int(f[3]), np.array(f[4:], float))
    lines = [ln for ln in (folder / "images.txt").read_text().splitlines() if not ln.startswith("#")]
    for header in lines[0::2]:  # each image: a header line, then its (here empty) 2D-point line
        f = header.split()
        images.append((int(f[0]), np.array(f[1:5], float), np.array(f[5:8], float), int(f[8]), f[9]))
    for line in (folder / "points3D.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            points.append([float(v) for v in line.split()[1:7]])
    return cameras, images, np.array(points)


def _random_pose(rng) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rng.normal(0, 1.0, 3)).as_matrix()
    T[:3, 3] = rng.normal(0, 2.0, 3)
    return T


def test_colmap_export_round_trip(tmp_path):
    import cv2
    import open3d as o3d

    from slam.config import load_run_config, write_run_yaml

    data = write_tum_sequence(tmp_path / "data", n=6)
    run = tmp_path / "run"
    run.mkdir()
    write_run_yaml(load_run_config(None, data=data, out=run, overrides=["frontend.name=rgbd"]), run / "run.yaml")
    rng = np.random.default_rng(7)
    stamps = 100.0 + np.array([0, 2, 5]) / 30.0
    T_wc = np.stack([_random_pose(rng) for _ in stamps])
    write_tum_trajectory(run / "keyframes.tum", Trajectory(stamps, T_wc))
    xyz, rgb = rng.normal(0, 1, (40, 3)), rng.integers(0, 256, (40, 3))
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    cloud.colors = o3d.utility.Vector3dVector(rgb / 255.0)
    o3d.io.write_point_cloud(str(run / "map.ply"), cloud)

    assert main(["export", "colmap", str(run), str(tmp_path / "model")]) == 0
    cameras, images, points = read_colmap_text(tmp_path / "model")
    assert cameras == {1: ("PINHOLE", 64, 48, pytest.approx([50, 50, 32, 24]))}
    assert [im[4] for im in images] == ["000000.png", "000002.png", "000005.png"]
    for (_, q, t, camera_id, name), pose in zip(images, T_wc):
        T_cw = np.linalg.inv(pose)  # COLMAP stores world-to-camera
        assert q[0] >= 0 and abs(np.linalg.norm(q) - 1) < 1e-9
        np.testing.assert_allclose(quat_wxyz_to_rotmat(q), T_cw[:3, :3], atol=1e-6)
        np.testing.assert_allclose(t, T_cw[:3, 3], atol=1e-6)
        assert camera_id == 1 and cv2.imread(str(tmp_path / "model" / "images" / name)).shape == (48, 64, 3)
    np.testing.assert_allclose(points[:, :3], xyz, atol=1e-6)
    np.testing.assert_array_equal(points[:, 3:].astype(int), rgb)


def test_colmap_export_of_a_folder_without_keyframes(tmp_path, capsys):
    assert main(["export", "colmap", str(tmp_path), str(tmp_path / "model")]) == 2
    assert "keyframes.tum" in capsys.readouterr().err


@pytest.fixture
def trajectories(tmp_path):
    rng = np.random.default_rng(3)
    t = np.arange(50) / 30.0
    gt = np.tile(np.eye(4), (50, 1, 1))
    gt[:, :3, 3] = np.stack([np.cos(2 * t), np.sin(3 * t), 0.1 * t], axis=1)
    est = gt.copy()
    est[:, :3, 3] = 0.8 * gt[:, :3, 3] + rng.normal(0, 0.01, (50, 3)) + [1, 0, 0]
    run = tmp_path / "run"
    write_tum_trajectory(run / "trajectory.tum", Trajectory(t, est))
    write_tum_trajectory(tmp_path / "gt.tum", Trajectory(t + 0.015, gt))  # stamps 15 ms apart
    (run / "metrics.json").write_text('{"frames": 50}')
    return run / "trajectory.tum", tmp_path / "gt.tum"


def test_eval_evo_order_options_and_own_output_file(trajectories, capsys):
    est, gt = trajectories
    assert main(["eval", "--ref", str(gt), "--est", str(est)]) == 2  # 15 ms > evo's default 10 ms
    assert "associate" in capsys.readouterr().err
    results = {}
    for flags, align in (([], "sim3"), (["-a"], "se3"), (["-as"], "sim3"), (["--align_origin"], "origin"),
                         (["--alignment", "none"], "none")):
        assert main(["eval", "--ref", str(gt), "--est", str(est), "--t_max_diff", "0.02", *flags]) == 0
        written = json.loads((est.parent / "eval_metrics.json").read_text())
        assert written["alignment"] == align and written["n_matched"] == 50 and written["t_max_diff"] == 0.02
        results[align] = written["ate_rmse"]
    assert results["se3"] == pytest.approx(written["ate_rmse_se3"])
    assert results["sim3"] == pytest.approx(written["ate_rmse_sim3"])
    assert results["sim3"] < results["se3"] < results["none"]  # scale 0.8 and an offset of 1 m
    assert json.loads((est.parent / "metrics.json").read_text()) == {"frames": 50}  # the run's own file is kept
    # evo's positional order (FORMAT REF EST) and the original order (EST GT) give the same numbers
    assert main(["eval", "tum", str(gt), str(est), "--t_max_diff", "0.02", "--out", str(est.parent / "a")]) == 0
    assert main(["eval", str(est), str(gt), "--t_max_diff", "0.02", "--out", str(est.parent / "b")]) == 0
    a, b = (json.loads((est.parent / d / "eval_metrics.json").read_text()) for d in ("a", "b"))
    assert a["ate_rmse_sim3"] == b["ate_rmse_sim3"] == pytest.approx(results["sim3"])
    assert main(["eval", "--ref", str(gt)]) == 2
