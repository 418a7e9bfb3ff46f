"""The CUT3R-family network as a module tree whose parameter names match the official checkpoints."""

from frontends.cut3r.model.net import Cut3rNet, ViewResult, validate_config

__all__ = ["Cut3rNet", "ViewResult", "validate_config"]
