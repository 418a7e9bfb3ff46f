"""Tests of the synthetic demo sequence: determinism, TUM layout, depth geometry, closed path."""

from __future__ import annotations

import numpy as np
import pytest

from slam.datasets import open_dataset
from slam.datasets.base import DatasetConfig
from slam.pointmaps import backproject_depth
from slam.synthetic import DEPTH_FACTOR, DemoRenderer, build_scene, camera_path, render_demo_sequence

SIZE = (60, 80)


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    return render_demo_sequence(tmp_path_factory.mktemp("demo") / "seq", n_frames=12, size=SIZE, seed=3)


def test_rendering_is_deterministic(small_demo, tmp_path):
    again = render_demo_sequence(tmp_path / "again", n_frames=12, size=SIZE, seed=3)
    files = sorted(p.relative_to(small_demo) for p in small_demo.rglob("*") if p.is_file())
    assert len(files) == 2 * 12 + 4
    for rel in files:
        assert (small_demo / rel).read_bytes() == (again / rel).read_bytes(), rel
    other = render_demo_sequence(tmp_path / "other", n_frames=12, size=SIZE, seed=4)
    assert (other / "rgb.txt").read_text() == (small_demo / "rgb.txt").read_text()
    first_png = sorted((small_demo / "rgb").iterdir())[0].name
    assert (other / "rgb" / first_png).read_bytes() != (small_demo / "rgb" / first_png).read_bytes()


def test_tum_reader_loads_the_sequence_losslessly(small_demo):
    ds = open_dataset(DatasetConfig(path=str(small_demo)))
    frames = list(ds)
    assert len(frames) == 12 and ds.has_depth and ds.has_ground_truth
    renderer = DemoRenderer(SIZE, seed=3)
    poses = camera_path(12)
    for i in (0, 7):
        rgb, depth = renderer.render(poses[i])
        f = frames[i]
        assert f.rgb.shape == (*SIZE, 3) and f.rgb.dtype == np.uint8
        np.testing.assert_array_equal(f.rgb, rgb)  # PNG: lossless
        np.testing.assert_allclose(f.depth, depth, atol=0.5 / DEPTH_FACTOR + 1e-6)  # 16-bit, 0.2 mm steps
        np.testing.assert_allclose(f.K, renderer.K, atol=1e-6)
        np.testing.assert_allclose(f.gt_pose, poses[i], atol=1e-6)
    assert frames[1].timestamp - frames[0].timestamp == pytest.approx(1 / 30, abs=1e-6)


def _distance_to_scene(points: np.ndarray) -> np.ndarray:
    """Distance (m) of each world point to the nearest face (bounded rectangle) of the scene."""
    best = np.full(len(points), np.inf)
    for q in build_scene():
        rel = points - q.origin
        a = np.clip(rel @ q.u, 0, q.size[0])
        b = np.clip(rel @ q.v, 0, q.size[1])
        nearest = q.origin + a[:, None] * q.u + b[:, None] * q.v
        best = np.minimum(best, np.linalg.norm(points - nearest, axis=1))
    return best


def test_depth_in_metres_matches_the_scene_geometry(small_demo):
    frames = list(open_dataset(DatasetConfig(path=str(small_demo))))
    for f in (frames[0], frames[5]):
        valid = f.depth > 0
        assert valid.mean() > 0.99  # a closed room: every ray hits something
        pts_cam = backproject_depth(f.depth, f.K)[valid].astype(np.float64)
        pts_world = pts_cam @ f.gt_pose[:3, :3].T + f.gt_pose[:3, 3]
        assert np.percentile(_distance_to_scene(pts_world), 99) < 1e-3


def test_a_wall_at_a_known_distance():
    renderer = DemoRenderer((48, 64))
    T = np.eye(4)  # camera at (0, 0, 2.3) looking along +x (east wall at x = 3), above all furniture
    T[:3, :3] = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # columns: right, down, forward
    T[:3, 3] = [0.0, 0.0, 2.3]
    _, depth = renderer.render(T)
    # pixel centres (31, 23) and (32, 24) straddle the optical axis: both hit the wall at z = 3 m
    np.testing.assert_allclose(depth[23:25, 31:33], 3.0, atol=1e-4)


def test_camera_path_closes_on_itself():
    poses = camera_path(150)
    step = np.linalg.norm(poses[1, :3, 3] - poses[0, :3, 3])
    closing = np.linalg.norm(poses[0, :3, 3] - poses[-1, :3, 3])
    assert 0.02 < step < 0.08 and closing == pytest.approx(step, rel=0.3)
    R_close = poses[-1, :3, :3].T @ poses[0, :3, :3]
    R_step = poses[0, :3, :3].T @ poses[1, :3, :3]
    angle = lambda R: np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1)))  # noqa: E731
    assert angle(R_close) == pytest.approx(angle(R_step), rel=0.3)
    for T in poses:  # proper rotations, camera inside the room
        np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-9)
        assert np.linalg.det(T[:3, :3]) == pytest.approx(1.0)
        assert np.all(np.abs(T[:2, 3]) < 2.0) and 1.0 < T[2, 3] < 2.0


def test_textures_have_gradient_for_photometric_odometry():
    rgb, _ = DemoRenderer((120, 160)).render(camera_path(150)[0])
    grey = rgb.astype(np.float32).mean(-1)
    gradient = np.abs(np.diff(grey, axis=1))
    assert np.mean(gradient > 3) > 0.2  # a good share of pixels has intensity change


def test_too_few_frames_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="n_frames"):
        render_demo_sequence(tmp_path, n_frames=1)
