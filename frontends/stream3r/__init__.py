"""STream3R: causal-transformer streaming reconstructor (network, KV-cache session, SLAM frontend).

``from frontends.stream3r import load_model`` reads a model folder (``config.json`` + ``model.safetensors``,
the Hugging Face layout of ``yslan/STream3R``) and returns the loaded network. Importing this package
registers the ``stream3r`` frontend (:mod:`.slam_frontend`) without importing torch; the network modules
are imported lazily.
"""

from __future__ import annotations

from typing import Any

from frontends.stream3r import slam_frontend as _slam_frontend  # noqa: F401  (registers the frontend)

__all__ = ["load_model"]


def __getattr__(name: str) -> Any:
    if name == "load_model":
        from frontends.stream3r.checkpoint import load_model

        return load_model
    raise AttributeError(f"module 'frontends.stream3r' has no attribute {name!r}")
