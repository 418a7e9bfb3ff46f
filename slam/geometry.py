"""Rigid and similarity transforms, rotations, quaternions, point transforms and pinhole projection.

Conventions: quaternions are scalar-last ``(qx, qy, qz, qw)`` as in the TUM format and in SciPy;
poses are 4x4 float64 matrices ``T = [[s*R, t], [0, 1]]`` (``s = 1`` for rigid poses), usually
camera-to-world ``T_wc`` in metres. All functions accept a single pose ``(4, 4)`` or a batch
``(N, 4, 4)`` unless stated otherwise.
"""

from __future__ import annotations

import numpy as np


def quat_to_rotmat(q_xyzw: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` from scalar-last quaternions ``(..., 4)`` (normalised first).

    Raises ValueError for a zero-norm quaternion.
    """
    from scipy.spatial.transform import Rotation  # imported on use: this module stays light to import

    q = np.asarray(q_xyzw, dtype=np.float64)
    return Rotation.from_quat(q.reshape(-1, 4)).as_matrix().reshape(q.shape[:-1] + (3, 3))


def rotmat_to_quat(R: np.ndarray) -> np.ndarray:
    """Scalar-last unit quaternions ``(..., 4)`` with ``qw >= 0`` from rotation matrices ``(..., 3, 3)``."""
    from scipy.spatial.transform import Rotation

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


def make_sim3(R: np.ndarray, t: np.ndarray, s: float = 1.0) -> np.ndarray:
    """4x4 ``[[s R, t], [0, 1]]`` from a 3x3 rotation, a 3-vector and a scale."""
    T = np.eye(4)
    T[:3, :3] = s * np.asarray(R, dtype=np.float64)
    T[:3, 3] = np.asarray(t, dtype=np.float64).reshape(3)
    return T


def rotation_of(T: np.ndarray) -> np.ndarray:
    """Rotation ``R`` (3x3, or (N, 3, 3) for (N, 4, 4) input) of Sim(3) matrices, re-orthonormalised (SVD)."""
    U, _, Vt = np.linalg.svd(np.asarray(T, dtype=np.float64)[..., :3, :3])
    flip = np.linalg.det(U @ Vt) < 0
    U[flip, :, -1] *= -1
    return U @ Vt


def rigid(T: np.ndarray) -> np.ndarray:
    """The rigid pose(s) with ``T``'s rotation and translation (scale dropped from the rotation block);
    4x4 or (N, 4, 4)."""
    T = np.asarray(T, dtype=np.float64)
    out = np.zeros_like(T)
    out[..., :3, :3] = rotation_of(T)
    out[..., :3, 3] = T[..., :3, 3]
    out[..., 3, 3] = 1.0
    return out


def rotation_angle(R: np.ndarray) -> float:
    """Angle in radians (in [0, pi]) of a 3x3 rotation, from its trace."""
    c = (np.trace(np.asarray(R)[:3, :3]) - 1.0) / 2.0
    return float(np.arccos(np.clip(c, -1.0, 1.0)))


def blend(A: np.ndarray, B: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Poses between ``A`` and ``B``: ``A @ D(alpha)`` with ``D = A^-1 B`` split into scale, rotation and
    translation, each taken ``alpha`` of the way (``s^alpha``, rotation vector times ``alpha``,
    ``alpha t``); ``alpha = 0`` gives ``A`` and ``1`` gives ``B``.

    Args:
        A, B: (N, 4, 4) Sim(3) matrices.
        alpha: (N,) weights in [0, 1].
    """
    from scipy.spatial.transform import Rotation

    A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    alpha = np.asarray(alpha, dtype=np.float64)
    if len(A) == 0:
        return A.copy()
    D = inverse_pose(A) @ B
    s = np.cbrt(np.linalg.det(D[:, :3, :3]))
    rotvec = Rotation.from_matrix(D[:, :3, :3] / s[:, None, None]).as_rotvec()
    Da = np.tile(np.eye(4), (len(A), 1, 1))
    Da[:, :3, :3] = Rotation.from_rotvec(alpha[:, None] * rotvec).as_matrix() * (s**alpha)[:, None, None]
    Da[:, :3, 3] = alpha[:, None] * D[:, :3, 3]
    return A @ Da


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``x -> A x + t`` of a 4x4 rigid/Sim(3) ``T = [[A, t], [0, 1]]`` applied to (..., 3) points (float64
    result when ``T`` is float64)."""
    T = np.asarray(T)
    return points @ T[:3, :3].T + T[:3, 3]


def project_points(points: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection of camera-frame points (OpenCV axes) to pixels.

    Args:
        points: (..., 3) points in the camera frame.
        K: 3x3 intrinsics of the image projected into.

    Returns:
        ``(uv, z)``: (..., 2) float pixel coordinates (column, row) and (...,) depths; points with
        ``z <= 0`` get ``uv = nan``.
    """
    p = np.asarray(points, dtype=np.float64)
    z = p[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        x, y = p[..., 0] / z, p[..., 1] / z
    u = K[0, 0] * x + K[0, 1] * y + K[0, 2]
    v = K[1, 1] * y + K[1, 2]
    uv = np.stack([u, v], axis=-1)
    uv[z <= 0] = np.nan
    return uv, z
