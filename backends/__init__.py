"""SLAM backend: keyframes, GTSAM Sim(3)/SE(3) pose graph (iSAM2), segments, loop closure, global alignment.

Entry point: :class:`SlamBackend` configured by :class:`BackendConfig` (the ``backend:`` config section).
"""

from backends.config import BackendConfig
from backends.slam_backend import FrameResult, SlamBackend

__all__ = ["BackendConfig", "FrameResult", "SlamBackend"]
