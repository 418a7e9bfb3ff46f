"""Frontends: turn frames into poses, pointmaps and confidences.

Frontends register themselves by name in :data:`frontends.base.FRONTENDS`; use :func:`create`. Built-in
frontends are the modules of this package (found and imported on first use of the registry, see
:mod:`slam.registry`); installed plug-ins come from the entry-point group ``ttsa_slam.frontends``.
Importing this package imports no frontend.
"""

from frontends.base import FRONTENDS, Frontend, create, frontend_config_class, reads_stereo_pair, register_frontend

__all__ = ["FRONTENDS", "Frontend", "create", "frontend_config_class", "reads_stereo_pair", "register_frontend"]
