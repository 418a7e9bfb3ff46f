"""The backend registry: ``backend.name`` in the run configuration selects a backend by name.

A backend is built as ``factory(cfg, frontend)`` with ``cfg`` the ``backend:`` section
(:class:`backends.config.BackendConfig`) and ``frontend`` the run's :class:`slam.types.PairEstimator`, and
must satisfy :class:`slam.types.Backend`. Built-ins register with :func:`register_backend` in the modules
imported by ``backends/__init__.py``; installed packages add backends through the entry-point group
``ttsa_slam.backends`` (name -> module that calls :func:`register_backend`).
"""

from __future__ import annotations

from typing import Callable

from slam.registry import Registry
from slam.types import Backend

BackendFactory = Callable[..., Backend]

BACKENDS: Registry[BackendFactory] = Registry("backend", group="ttsa_slam.backends")


def register_backend(name: str) -> Callable[[BackendFactory], BackendFactory]:
    """Class decorator registering a backend under ``name`` (built as ``cls(cfg, frontend)``)."""
    return BACKENDS.register(name)
