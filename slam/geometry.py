"""Small pose helpers used across the project.

Conventions: quaternions are scalar-last ``(qx, qy, qz, qw)`` as in the TUM format and in SciPy;
poses are 4x4 float64 matrices ``T = [[s*R, t], [0, 1]]`` (``s = 1`` for rigid poses), usually
camera-to-world ``T_wc`` in metres. All functions accept a single pose ``(4, 4)`` or a batch
``(N, 4, 4)`` unless stated otherwise.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def quat_to_rotmat(q_xyzw: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` from scalar-last quaternions ``(..., 4)`` (normalised first).

    Raises ValueError for a zero-norm quaternion.
    """
    q = np.asarray(q_xyzw, dtype=np.float64)
    return Rotation.from_quat(q.reshape(-1, 4)).as_matrix().reshape(q.shape[:-1] + (3, 3))


def rotmat_to_quat(R: np.ndarray) -> np.ndarray:
    """Scalar-last unit quaternions ``(..., 4)`` with ``qw >= 0`` from rotation matrices ``(..., 3, 3)``."""
    R = np.asarray(R, dtype=np.float64)
    q = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_quat(canonical=True)
    return q.reshape(R.shape[:-2] + (4,))


def pose_from_tq(t: np.ndarray, q_xyzw: np.ndarray) -> np.ndarray:
    """4x4 rigid pose(s) from translation ``(..., 3)`` and scalar-last quaternion ``(..., 4)``."""
    t = np.asarray(t, dtype=np.float64)
    R = quat_to_rotmat(q_xyzw)
    T = np.zeros(R.shape[:-2] + (4, 4))
    T[..., :3, :3] = R
    T[..., :3, 3] = t
    T[..., 3, 3] = 1.0
    return T


def similarity_scale(T: np.ndarray) -> np.ndarray:
    """Scale ``s`` of 4x4 similarity transform(s) ``[[s*R, t], [0, 1]]`` (cube root of the block determinant)."""
    return np.cbrt(np.linalg.det(np.asarray(T, dtype=np.float64)[..., :3, :3]))


def rotation_part(T: np.ndarray) -> np.ndarray:
    """Pure rotation ``R`` ``(..., 3, 3)`` of rigid or similarity transform(s), with the scale divided out."""
    T = np.asarray(T, dtype=np.float64)
    return T[..., :3, :3] / similarity_scale(T)[..., None, None]


def pose_to_tq(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Translation ``(..., 3)`` and scalar-last quaternion ``(..., 4)`` of pose(s); any scale is dropped."""
    T = np.asarray(T, dtype=np.float64)
    return T[..., :3, 3].copy(), rotmat_to_quat(rotation_part(T))


def inverse_pose(T: np.ndarray) -> np.ndarray:
    """Inverse of rigid or similarity transform(s) in closed form: ``[[A^-1, -A^-1 t], [0, 1]]``, ``A^-1 = A^T / s^2``."""
    T = np.asarray(T, dtype=np.float64)
    A = T[..., :3, :3]
    s2 = similarity_scale(T)[..., None, None] ** 2
    A_inv = np.swapaxes(A, -1, -2) / s2
    out = np.zeros_like(T)
    out[..., :3, :3] = A_inv
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", A_inv, T[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def relative_pose(T_wa: np.ndarray, T_wb: np.ndarray) -> np.ndarray:
    """Pose of b in a's frame: ``T_ab = T_wa^-1 @ T_wb``."""
    return inverse_pose(T_wa) @ np.asarray(T_wb, dtype=np.float64)


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """3x3 float64 pinhole matrix from focal lengths and principal point in pixels."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)
