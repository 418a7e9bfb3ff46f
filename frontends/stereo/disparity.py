"""Dense stereo depth of a rectified pair: OpenCV semi-global matching with a left-right consistency check.

The left disparity comes from ``cv2.StereoSGBM`` on the pair at the working size, with SGBM's left-right
consistency check: a left pixel keeps its disparity ``d`` only when the right view's disparity at ``u - d``
agrees within ``lr_max_diff`` (occlusions and mismatches fail this). Depth is ``z = f * b / d`` and its relative error for a disparity
noise ``sigma_d`` is ``z * sigma_d / (f * b)``; depth whose relative error exceeds ``max_depth_error`` is
dropped and the confidence ``1 / (1 + (e / (max_depth_error / 2))^2)`` halves at half of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from frontends.stereo.config import StereoConfig
from slam.camera import scale_intrinsics
from slam.pointmaps import backproject_depth, downsample_image


@dataclass
class StereoDepth:
    """Dense depth of one stereo frame at the working size.

    Attributes:
        rgb: hxwx3 uint8 left image at the working size.
        depth: hxw float32 metres, 0 = invalid.
        confidence: hxw float32 in [0, 1].
        K: 3x3 intrinsics for (h, w).
        valid_fraction: fraction of pixels with valid depth.
    """

    rgb: np.ndarray
    depth: np.ndarray
    confidence: np.ndarray
    K: np.ndarray
    valid_fraction: float

    def points(self) -> np.ndarray:
        """hxwx3 float32 pointmap in the left camera frame (metres); invalid pixels are (0, 0, 0)."""
        return backproject_depth(self.depth, self.K)


def max_disparity(width: int, cfg: StereoConfig) -> int:
    """SGBM ``numDisparities`` for a working image ``width``: a positive multiple of 16."""
    return max(16, int(np.ceil(cfg.max_disparity_fraction * width / 16.0)) * 16)


def _matcher(num_disp: int, cfg: StereoConfig, channels: int):
    bs = cfg.block_size
    return cv2.StereoSGBM_create(minDisparity=0, numDisparities=num_disp, blockSize=bs,
                                 P1=8 * channels * bs * bs, P2=32 * channels * bs * bs, disp12MaxDiff=max(1, int(np.ceil(cfg.lr_max_diff))),
                                 uniquenessRatio=10, speckleWindowSize=0, speckleRange=0,
                                 mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY)


def consistent_disparity(left: np.ndarray, right: np.ndarray, cfg: StereoConfig) -> np.ndarray:
    """Left disparity (hxw float32 pixels, 0 = invalid) of a rectified grey pair, left-right checked.

    The check is SGBM's own (``disp12MaxDiff``): the right view's disparity is derived from the same cost
    volume and a left pixel whose match disagrees by more than ``lr_max_diff`` (rounded up) is invalid.
    """
    num_disp = max_disparity(left.shape[1], cfg)
    d_left = _matcher(num_disp, cfg, 1).compute(left, right).astype(np.float32) / 16.0
    return np.where(d_left > 0, d_left, 0.0).astype(np.float32)


def relative_depth_error(depth: np.ndarray, focal: float, baseline: float, sigma_d: float) -> np.ndarray:
    """``z * sigma_d / (f * b)``: relative depth error for disparity noise ``sigma_d`` (pixels at focal ``f``)."""
    return depth * (sigma_d / (focal * baseline))


def stereo_depth(left_rgb: np.ndarray, right_rgb: np.ndarray, K: np.ndarray, baseline: float,
                 cfg: StereoConfig) -> StereoDepth:
    """Dense depth of a full-size rectified pair (HxWx3 uint8 each, K 3x3 for HxW, baseline metres)."""
    f = cfg.downsample
    h, w = left_rgb.shape[0] // f, left_rgb.shape[1] // f
    K_work = scale_intrinsics(np.asarray(K, np.float64), (h * f, w * f), (h, w))
    rgb = np.ascontiguousarray(downsample_image(left_rgb, f))
    grey_l = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    grey_r = cv2.cvtColor(np.ascontiguousarray(downsample_image(right_rgb, f)), cv2.COLOR_RGB2GRAY)
    disp = consistent_disparity(grey_l, grey_r, cfg)
    focal = float(K_work[0, 0])
    with np.errstate(divide="ignore"):
        depth = np.where(disp > 0, focal * baseline / np.maximum(disp, 1e-6), 0.0).astype(np.float32)
    err = relative_depth_error(depth, float(K[0, 0]), baseline, cfg.disparity_sigma)
    depth[err > cfg.max_depth_error] = 0.0
    conf = np.where(depth > 0, 1.0 / (1.0 + (err / (0.5 * cfg.max_depth_error)) ** 2), 0.0).astype(np.float32)
    return StereoDepth(rgb=rgb, depth=depth, confidence=conf, K=K_work, valid_fraction=float((depth > 0).mean()))
