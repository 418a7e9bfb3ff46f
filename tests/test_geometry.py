"""Pose helpers: quaternion conversions, inverse of rigid/similarity transforms, relative pose."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from slam.geometry import (
    inverse_pose,
    pose_from_tq,
    pose_to_tq,
    quat_to_rotmat,
    relative_pose,
    rotmat_to_quat,
    similarity_scale,
)


def test_quaternion_is_scalar_last():
    # 90 degrees about z: (qx, qy, qz, qw) = (0, 0, sin45, cos45)
    R = quat_to_rotmat([0, 0, np.sqrt(0.5), np.sqrt(0.5)])
    assert R == pytest.approx(np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]]), abs=1e-12)
    q = rotmat_to_quat(R)
    assert q == pytest.approx([0, 0, np.sqrt(0.5), np.sqrt(0.5)])


def test_batched_round_trip():
    R = Rotation.random(7, random_state=1).as_matrix()
    t = np.random.default_rng(1).normal(size=(7, 3))
    T = pose_from_tq(t, rotmat_to_quat(R))
    assert T.shape == (7, 4, 4) and T[:, :3, :3] == pytest.approx(R)
    t2, q2 = pose_to_tq(T)
    assert t2 == pytest.approx(t) and (q2[:, 3] >= 0).all()


@pytest.mark.parametrize("scale", [1.0, 0.3, 4.0])
def test_inverse_of_rigid_and_similarity(scale):
    T = pose_from_tq([1.0, -2.0, 0.5], [0.1, 0.7, -0.2, 0.6])
    T[:3, :3] *= scale
    assert similarity_scale(T) == pytest.approx(scale)
    assert inverse_pose(T) @ T == pytest.approx(np.eye(4), abs=1e-12)
    assert inverse_pose(T) == pytest.approx(np.linalg.inv(T))


def test_relative_pose():
    T_wa = pose_from_tq([1, 0, 0], [0, 0, 0, 1])
    T_wb = pose_from_tq([1, 2, 0], [0, 0, np.sqrt(0.5), np.sqrt(0.5)])
    T_ab = relative_pose(T_wa, T_wb)
    assert T_wa @ T_ab == pytest.approx(T_wb)
    assert T_ab[:3, 3] == pytest.approx([0, 2, 0])


def test_point_transform_projection_and_angle_agree():
    from slam.geometry import make_sim3, project_points, rotation_angle, transform_points

    R = Rotation.from_rotvec([0.0, 0.3, 0.0]).as_matrix()
    T = make_sim3(R, [0.1, -0.2, 0.5], 2.0)
    pts = np.array([[0.0, 0.0, 1.0], [1.0, 2.0, 3.0]])
    assert np.allclose(transform_points(T, pts), (2.0 * R @ pts.T).T + [0.1, -0.2, 0.5])
    assert rotation_angle(R) == pytest.approx(0.3)
    K = np.array([[100.0, 0, 32], [0, 90.0, 24], [0, 0, 1]])
    uv, z = project_points(np.array([[0.5, -0.2, 2.0], [1.0, 1.0, -1.0]]), K)
    assert np.allclose(uv[0], [32 + 100 * 0.25, 24 - 90 * 0.1]) and np.allclose(z, [2.0, -1.0])
    assert np.isnan(uv[1]).all()  # behind the camera


def test_atomic_write_keeps_the_old_file_on_error(tmp_path):
    from slam.atomic import atomic_path, write_text_atomic

    path = tmp_path / "sub" / "metrics.json"
    write_text_atomic(path, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            assert tmp.suffix == ".json" and tmp.parent == path.parent
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert path.read_text() == "old" and sorted(p.name for p in path.parent.iterdir()) == ["metrics.json"]
