"""Conversion of 4x4 Sim(3)/SE(3) matrices to and from GTSAM types (the matrix helpers are in
:mod:`slam.geometry`).

A Sim(3) transform is stored as the 4x4 matrix ``[[s R, t], [0, 1]]`` acting as ``x -> s R x + t``.
GTSAM's ``Similarity3(R, t, s)`` acts as ``x -> s (R x + t)`` and its ``matrix()`` is ``[[R, t], [0, 1/s]]``;
the conversions below handle that.
"""

from __future__ import annotations

import gtsam
import numpy as np

from slam.geometry import rotation_of, similarity_scale


def to_gtsam(T: np.ndarray, sim3: bool):
    """4x4 matrix -> ``gtsam.Similarity3`` (``sim3``) or ``gtsam.Pose3`` (scale dropped)."""
    s = float(similarity_scale(T))
    R = gtsam.Rot3(rotation_of(T))
    if sim3:
        return gtsam.Similarity3(R, T[:3, 3] / s, s)
    return gtsam.Pose3(R, T[:3, 3].copy())


def from_gtsam(value) -> np.ndarray:
    """``gtsam.Similarity3`` or ``gtsam.Pose3`` -> 4x4 ``[[s R, t], [0, 1]]``."""
    if isinstance(value, gtsam.Similarity3):
        return np.asarray(value.matrix()) * value.scale()
    return np.asarray(value.matrix())
