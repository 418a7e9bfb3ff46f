"""Global (initialisation-free) pose estimates between two RGB-D views, for wide-baseline pairs.

Dense odometry only converges from a nearby start; loop closures need a start from scratch. Two sources:

* :func:`feature_pose`: SIFT keypoints (OpenCV) matched with Lowe's ratio test; the matches whose keypoint
  in ``b`` has valid depth give 3-D points in ``b``'s camera frame and a RANSAC PnP against their pixels in
  ``a`` gives ``T_ab``. Works where the images have texture.
* :func:`geometric_pose`: FPFH features of voxel-downsampled point clouds and Open3D's RANSAC registration
  on feature matches. Works where the geometry is distinctive (furniture), whatever the texture.

Both return ``T_ab``, the pose of ``b``'s camera in ``a``'s camera frame, or None. Open3D's RANSAC is
seeded (:data:`RANSAC_SEED`) so that pair estimates are repeatable.
"""

from __future__ import annotations

import cv2
import numpy as np
import open3d as o3d

from frontends.rgbd.odometry import RgbdView

RANSAC_SEED = 0
_REG = o3d.pipelines.registration


def feature_pose(a: RgbdView, b: RgbdView, n_features: int = 1500, ratio: float = 0.8,
                 reprojection_px: float = 2.0, min_inliers: int = 12) -> tuple[np.ndarray, int] | None:
    """``(T_ab, n_inliers)`` from SIFT matches and RANSAC PnP, or None with fewer than ``min_inliers``."""
    sift = cv2.SIFT_create(nfeatures=n_features, contrastThreshold=0.02)
    kp_a, desc_a = sift.detectAndCompute(cv2.cvtColor(a.rgb, cv2.COLOR_RGB2GRAY), None)
    kp_b, desc_b = sift.detectAndCompute(cv2.cvtColor(b.rgb, cv2.COLOR_RGB2GRAY), None)
    if desc_a is None or desc_b is None or len(kp_a) < min_inliers or len(kp_b) < min_inliers:
        return None
    knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(desc_b, desc_a, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < ratio * m[1].distance]
    if len(good) < min_inliers:
        return None
    uv_b = np.array([kp_b[m.queryIdx].pt for m in good], np.float64)
    uv_a = np.array([kp_a[m.trainIdx].pt for m in good], np.float64)
    row = np.clip(np.round(uv_b[:, 1]).astype(np.int64), 0, b.size[0] - 1)
    col = np.clip(np.round(uv_b[:, 0]).astype(np.int64), 0, b.size[1] - 1)
    obj = b.points()[row, col].astype(np.float64)
    ok = obj[:, 2] > 0
    if ok.sum() < min_inliers:
        return None
    cv2.setRNGSeed(RANSAC_SEED)
    found, rvec, tvec, inliers = cv2.solvePnPRansac(
        obj[ok], uv_a[ok], a.K, None, iterationsCount=500, reprojectionError=reprojection_px, confidence=0.999,
        flags=cv2.SOLVEPNP_EPNP)
    if not found or inliers is None or len(inliers) < min_inliers:
        return None
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(rvec)[0]
    T[:3, 3] = np.asarray(tvec).ravel()
    return T, int(len(inliers))


def _cloud(view: RgbdView, voxel: float) -> tuple[o3d.geometry.PointCloud, _REG.Feature]:
    pts = view.points()[view.depth > 0].astype(np.float64)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts)).voxel_down_sample(voxel)
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=2 * voxel, max_nn=30))
    fpfh = _REG.compute_fpfh_feature(cloud, o3d.geometry.KDTreeSearchParamHybrid(radius=5 * voxel, max_nn=100))
    return cloud, fpfh


def geometric_pose(a: RgbdView, b: RgbdView, voxel: float = 0.05, max_iterations: int = 50000,
                   min_points: int = 50) -> tuple[np.ndarray, float] | None:
    """``(T_ab, fitness)`` from FPFH feature matching + RANSAC on ``voxel``-downsampled clouds, or None."""
    cloud_a, feat_a = _cloud(a, voxel)
    cloud_b, feat_b = _cloud(b, voxel)
    if len(cloud_a.points) < min_points or len(cloud_b.points) < min_points:
        return None
    o3d.utility.random.seed(RANSAC_SEED)
    result = _REG.registration_ransac_based_on_feature_matching(
        cloud_b, cloud_a, feat_b, feat_a, True, 1.5 * voxel, _REG.TransformationEstimationPointToPoint(False), 3,
        [_REG.CorrespondenceCheckerBasedOnEdgeLength(0.9), _REG.CorrespondenceCheckerBasedOnDistance(1.5 * voxel)],
        _REG.RANSACConvergenceCriteria(max_iterations, 0.999))
    if result.fitness <= 0:
        return None
    return np.asarray(result.transformation, np.float64), float(result.fitness)
