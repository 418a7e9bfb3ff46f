"""Frontends: turn frames into poses, pointmaps and confidences.

Frontends register themselves by name in :data:`frontends.base.FRONTENDS`; use :func:`create`.
Importing this package imports the built-in frontends so that they are registered.
"""

from frontends.base import FRONTENDS, Frontend, create, frontend_config_class

__all__ = ["FRONTENDS", "Frontend", "create", "frontend_config_class"]

# Built-in frontends register on import. Optional heavy ones fail softly (their import error is
# reported when somebody asks for them by name).
from frontends import rgbd as _rgbd  # noqa: E402,F401
from frontends import perturbed as _perturbed  # noqa: E402,F401

try:  # pragma: no cover - exercised when torch is installed (always in this project)
    from frontends.cut3r import slam_frontend as _cut3r  # noqa: F401
except ModuleNotFoundError as exc:  # torch missing
    _CUT3R_IMPORT_ERROR: Exception | None = exc
