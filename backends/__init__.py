"""SLAM backend: keyframes, GTSAM Sim(3)/SE(3) pose graph (iSAM2), segments, loop closure, global alignment.

Entry point: :func:`create_backend` builds the backend named by ``backend.name`` (built-in: ``graph``,
:class:`SlamBackend`) from the ``backend:`` config section (:class:`BackendConfig`).
"""

from backends.config import BackendConfig
from backends.registry import BACKENDS, register_backend
from backends.slam_backend import SlamBackend
from slam.types import Backend, FrameResult, PairEstimator

__all__ = ["BACKENDS", "BackendConfig", "FrameResult", "SlamBackend", "create_backend", "register_backend"]


def create_backend(cfg: BackendConfig, frontend: PairEstimator) -> Backend:
    """The backend registered as ``cfg.name``, built for ``frontend``."""
    return BACKENDS.get(cfg.name)(cfg, frontend)
