"""Cameras from STream3R's pose encoding.

``pose_enc = [t(3), q_xyzw(4), fov_h, fov_w]``: ``[R(q) | t]`` is camera-from-world (``X_cam = R X_world + t``,
OpenCV axes); the world frame is the first camera of the sequence. Intrinsics for an image of size (H, W):
``fx = (W/2)/tan(fov_w/2)``, ``fy = (H/2)/tan(fov_h/2)``, principal point ``(W/2, H/2)``.
"""

from __future__ import annotations

import numpy as np

from slam.geometry import intrinsics_matrix, inverse_pose, pose_from_tq


def extrinsic_from_pose_enc(pose_enc) -> np.ndarray:
    """4x4 float64 camera-from-world ``T_cw`` (the quaternion need not be unit length)."""
    p = np.asarray(pose_enc, dtype=np.float64).reshape(9)
    return pose_from_tq(p[:3], p[3:7])


def pose_from_pose_enc(pose_enc) -> np.ndarray:
    """4x4 float64 camera-to-world ``T_wc`` (inverse of :func:`extrinsic_from_pose_enc`)."""
    return inverse_pose(extrinsic_from_pose_enc(pose_enc))


def intrinsics_from_pose_enc(pose_enc, size: tuple[int, int]) -> np.ndarray:
    """3x3 float64 ``K`` for an image of ``size = (H, W)`` from the two fields of view (radians).

    A field of view of 0 (possible after the network's ReLU) gives an infinite focal length.
    """
    p = np.asarray(pose_enc, dtype=np.float64).reshape(9)
    h, w = size
    with np.errstate(divide="ignore"):
        fy = (h / 2.0) / np.tan(p[7] / 2.0)
        fx = (w / 2.0) / np.tan(p[8] / 2.0)
    return intrinsics_matrix(fx, fy, w / 2.0, h / 2.0)
