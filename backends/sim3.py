"""Small Sim(3)/SE(3) helpers on 4x4 matrices, and conversion to/from GTSAM types.

A Sim(3) transform is stored as the 4x4 matrix ``[[s R, t], [0, 1]]`` acting as ``x -> s R x + t``.
A rigid transform is the special case ``s = 1``. GTSAM's ``Similarity3(R, t, s)`` acts as
``x -> s (R x + t)`` and its ``matrix()`` is ``[[R, t], [0, 1/s]]``; the conversions below handle that.
"""

from __future__ import annotations

import gtsam
import numpy as np

from slam.geometry import inverse_pose, relative_pose, similarity_scale


def make_sim3(R: np.ndarray, t: np.ndarray, s: float = 1.0) -> np.ndarray:
    """4x4 ``[[s R, t], [0, 1]]`` from a 3x3 rotation, a 3-vector and a scale."""
    T = np.eye(4)
    T[:3, :3] = s * np.asarray(R, dtype=np.float64)
    T[:3, 3] = np.asarray(t, dtype=np.float64).reshape(3)
    return T


def scale_of(T: np.ndarray) -> float:
    """Scale ``s`` of a Sim(3) matrix (cube root of the determinant of its 3x3 block)."""
    return float(similarity_scale(T))


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


def inverse(T: np.ndarray) -> np.ndarray:
    """Inverse of Sim(3) matrices, 4x4 or (N, 4, 4)."""
    return inverse_pose(T)


def relative(T_wa: np.ndarray, T_wb: np.ndarray) -> np.ndarray:
    """``T_ab = T_wa^-1 T_wb``."""
    return relative_pose(T_wa, T_wb)


def rotation_angle(R: np.ndarray) -> float:
    """Angle in radians of a 3x3 rotation."""
    c = (np.trace(R) - 1.0) / 2.0
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
    D = inverse(A) @ B
    s = np.cbrt(np.linalg.det(D[:, :3, :3]))
    rotvec = Rotation.from_matrix(D[:, :3, :3] / s[:, None, None]).as_rotvec()
    Da = np.tile(np.eye(4), (len(A), 1, 1))
    Da[:, :3, :3] = Rotation.from_rotvec(alpha[:, None] * rotvec).as_matrix() * (s**alpha)[:, None, None]
    Da[:, :3, 3] = alpha[:, None] * D[:, :3, 3]
    return A @ Da


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 Sim(3) to (..., 3) points."""
    return points @ T[:3, :3].T + T[:3, 3]


def to_gtsam(T: np.ndarray, sim3: bool):
    """4x4 matrix -> ``gtsam.Similarity3`` (``sim3``) or ``gtsam.Pose3`` (scale dropped)."""
    s = scale_of(T)
    R = gtsam.Rot3(rotation_of(T))
    if sim3:
        return gtsam.Similarity3(R, T[:3, 3] / s, s)
    return gtsam.Pose3(R, T[:3, 3].copy())


def from_gtsam(value) -> np.ndarray:
    """``gtsam.Similarity3`` or ``gtsam.Pose3`` -> 4x4 ``[[s R, t], [0, 1]]``."""
    if isinstance(value, gtsam.Similarity3):
        return np.asarray(value.matrix()) * value.scale()
    return np.asarray(value.matrix())
