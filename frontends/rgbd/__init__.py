"""Classical RGB-D frontend (``frontend.name=rgbd``): Open3D dense RGB-D odometry, frame-to-keyframe.

Importing this package registers the frontend. See :class:`RgbdConfig` for its options.
"""

from frontends.rgbd.config import METHODS, RgbdConfig
from frontends.rgbd.descriptor import global_descriptor
from frontends.rgbd.frontend import RgbdFrontend
from slam.pointmaps import backproject_depth

__all__ = ["METHODS", "RgbdConfig", "RgbdFrontend", "backproject_depth", "global_descriptor"]
