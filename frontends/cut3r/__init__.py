"""The CUT3R-family frontend (CUT3R, TTT3R, TTSA3R): network, checkpoint loading, preprocessing.

``from frontends.cut3r import load_model`` reads an official ``.pth`` or a converted ``.safetensors`` and
returns the loaded :class:`~frontends.cut3r.model.net.Cut3rNet`. Importing this package registers the
``cut3r``, ``ttt3r`` and ``ttsa3r`` frontends (:mod:`.slam_frontend`) without importing torch; the network
modules are imported lazily.
"""

from __future__ import annotations

from typing import Any

from frontends.cut3r import slam_frontend as _slam_frontend  # noqa: F401  (registers the frontends)

__all__ = ["load_model", "read_checkpoint", "parse_model_string"]


def __getattr__(name: str) -> Any:
    if name in ("load_model", "read_checkpoint"):
        from frontends.cut3r import checkpoint

        return getattr(checkpoint, name)
    if name == "parse_model_string":
        from frontends.cut3r.model_string import parse_model_string

        return parse_model_string
    raise AttributeError(f"module 'frontends.cut3r' has no attribute {name!r}")
