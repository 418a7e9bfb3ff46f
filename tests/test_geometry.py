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
