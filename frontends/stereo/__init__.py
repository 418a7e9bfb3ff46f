"""Classical stereo frontend (``frontend.name=stereo``): SGBM depth + feature PnP tracking, metric, no weights.

Importing this package registers the frontend. See :class:`StereoConfig` for its options.
"""

from frontends.stereo.config import StereoConfig
from frontends.stereo.frontend import StereoFrontend

__all__ = ["StereoConfig", "StereoFrontend"]
