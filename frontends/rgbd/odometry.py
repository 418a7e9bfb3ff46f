"""RGB-D frames at the working size and dense RGB-D odometry between two of them (Open3D tensor API).

Open3D's tensor ``t.pipelines.odometry.rgbd_odometry_multi_scale`` is used rather than the legacy
``pipelines.odometry.compute_rgbd_odometry`` (speed comparison in ``docs/tuning.md``).
Transform convention of this module: ``T_target_source`` maps points of the *source* camera frame into the
*target* camera frame, i.e. it is the pose of the source camera expressed in the target camera's frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d

from frontends.rgbd.config import RgbdConfig
from slam.camera import scale_intrinsics
from slam.geometry import rotation_angle
from slam.pointmaps import backproject_depth, downsample_depth, downsample_image

_METHOD = {
    "hybrid": o3d.t.pipelines.odometry.Method.Hybrid,
    "color": o3d.t.pipelines.odometry.Method.Intensity,
    "icp": o3d.t.pipelines.odometry.Method.PointToPlane,
}


#: ``hybrid+icp``: largest change the ICP refinement may make to the hybrid estimate (fraction of the
#: median scene depth; degrees)
MAX_REFINE_MOTION = 0.02
MAX_REFINE_DEG = 2.0


@dataclass
class RgbdView:
    """One RGB-D frame at the working size.

    Attributes:
        rgb: hxwx3 uint8 RGB.
        depth: hxw float32 metres, 0 = invalid or beyond :meth:`RgbdConfig.depth_limit`.
        K: 3x3 intrinsics for (h, w).
        image: the same data as an Open3D tensor ``RGBDImage`` (colour uint8, depth float32 metres).
        valid_fraction: fraction of pixels with valid depth.
        median_depth: median valid depth (m; 1.0 without valid depth).
    """

    rgb: np.ndarray
    depth: np.ndarray
    K: np.ndarray
    image: o3d.t.geometry.RGBDImage
    valid_fraction: float
    median_depth: float = 1.0

    @property
    def size(self) -> tuple[int, int]:
        return int(self.depth.shape[0]), int(self.depth.shape[1])

    def points(self) -> np.ndarray:
        """hxwx3 float32 pointmap in this camera's frame (metres); invalid pixels are (0, 0, 0)."""
        return backproject_depth(self.depth, self.K)


def make_view(rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, cfg: RgbdConfig) -> RgbdView:
    """Reduce a full-size RGB-D frame (HxWx3 uint8, HxW metres, 3x3 K for HxW) to the working size."""
    f = cfg.downsample
    h, w = depth.shape[0] // f, depth.shape[1] // f
    K_work = scale_intrinsics(K, (h * f, w * f), (h, w))
    small_rgb = np.ascontiguousarray(downsample_image(rgb, f), dtype=np.uint8)
    small_depth = downsample_depth(depth, f, max_spread=cfg.depth_outlier / 2)
    small_depth[small_depth > cfg.depth_limit()] = 0.0
    image = o3d.t.geometry.RGBDImage(o3d.t.geometry.Image(o3d.core.Tensor(small_rgb)),
                                     o3d.t.geometry.Image(o3d.core.Tensor(small_depth)))
    z = small_depth[small_depth > 0]
    return RgbdView(small_rgb, small_depth, K_work, image, len(z) / small_depth.size,
                    float(np.median(z)) if len(z) else 1.0)


@dataclass
class OdometryEstimate:
    """Result of one odometry solve.

    Attributes:
        T_target_source: 4x4 pose of the source camera in the target camera frame.
        fitness: fraction of the source's *valid* pixels with an inlier correspondence, in [0, 1].
        residual: Open3D's mean inlier residual (squared units of the method's residual).
        ok: False when the solve raised, was non-finite or found no correspondences.
    """

    T_target_source: np.ndarray
    fitness: float
    residual: float
    ok: bool


def _criteria(iterations: list[int], tolerance: float) -> list:
    return [o3d.t.pipelines.odometry.OdometryConvergenceCriteria(int(n), tolerance, tolerance) for n in iterations]


def _solve(source: RgbdView, target: RgbdView, init: np.ndarray, method: str, iterations: list[int],
           cfg: RgbdConfig) -> OdometryEstimate:
    params = o3d.t.pipelines.odometry.OdometryLossParams(cfg.depth_outlier, cfg.depth_huber, cfg.intensity_huber)
    try:
        res = o3d.t.pipelines.odometry.rgbd_odometry_multi_scale(
            source.image, target.image, o3d.core.Tensor(source.K), o3d.core.Tensor(np.asarray(init, np.float64)),
            1.0, cfg.depth_limit(),
            _criteria(iterations, cfg.convergence),
            _METHOD[method], params)
    except RuntimeError:  # Open3D raises when no correspondence is left
        return OdometryEstimate(np.asarray(init, np.float64), 0.0, float("inf"), False)
    T = res.transformation.numpy().astype(np.float64)
    fitness = float(res.fitness) / max(source.valid_fraction, 1e-9)
    ok = bool(np.isfinite(T).all() and fitness > 0)
    return OdometryEstimate(T if ok else np.asarray(init, np.float64), min(fitness, 1.0),
                            float(res.inlier_rmse), ok)


def estimate_motion(source: RgbdView, target: RgbdView, init_T_target_source: np.ndarray, cfg: RgbdConfig,
                    iterations: list[int] | None = None) -> OdometryEstimate:
    """Dense RGB-D odometry: the pose of ``source``'s camera in ``target``'s camera frame.

    ``cfg.method`` picks the residual; ``hybrid+icp`` runs the hybrid solve (photometric + depth terms: a
    wide basin, and it holds where the geometry alone is degenerate, e.g. a textured plane) and then refines
    it with projective point-to-plane ICP on the finest level (precise where depth has structure, and blind
    to colour that is not pixel-aligned with depth). The refinement is kept only when it moves the estimate
    by less than :data:`MAX_REFINE_MOTION` of the source's median depth and :data:`MAX_REFINE_DEG`: a larger
    move means ICP slid along a direction the geometry does not pin. ``iterations`` overrides
    ``cfg.iterations``.
    """
    iterations = list(iterations or cfg.iterations)
    if cfg.method == "hybrid+icp":
        first = _solve(source, target, init_T_target_source, "hybrid", iterations, cfg)
        if not first.ok:
            return first
        refined = _solve(source, target, first.T_target_source, "icp", [iterations[-1]], cfg)
        if not refined.ok:
            return first
        change = np.linalg.inv(first.T_target_source) @ refined.T_target_source
        angle = np.degrees(rotation_angle(change))
        small = np.linalg.norm(change[:3, 3]) <= MAX_REFINE_MOTION * source.median_depth and angle <= MAX_REFINE_DEG
        return refined if small else first
    return _solve(source, target, init_T_target_source, cfg.method, iterations, cfg)
