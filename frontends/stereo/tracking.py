"""Sparse stereo features and PnP between stereo frames.

* :func:`stereo_features`: keypoints (ORB or SIFT) of the full-resolution left image, and for each a
  metric 3-D point in the left camera frame from its disparity: the dense disparity (working size) is the
  start, refined at full resolution by a 1-D block search along the row (sum of absolute differences over
  a ``PATCH x PATCH`` window, +-``SEARCH`` pixels) with a parabola through the best cost and its two
  neighbours for the sub-pixel part. Points whose relative depth error ``z * sigma_d / (f * b)`` exceeds
  ``max_depth_error`` keep no 3-D point (NaN).
* :func:`pnp`: the pose of a camera from 3-D points of a reference frame and their matched keypoints,
  by PnP-RANSAC (``cv2.solvePnPRansac``) followed by Levenberg-Marquardt over the inliers
  (``cv2.solvePnPRefineLM``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from frontends.stereo.config import StereoConfig
from frontends.stereo.disparity import relative_depth_error

PATCH = 9
SEARCH = 2
RANSAC_ITERATIONS = 200
RANSAC_CONFIDENCE = 0.999


@dataclass
class StereoFeatures:
    """Keypoints of one stereo frame.

    Attributes:
        uv: (n, 2) float32 pixel positions in the full-resolution left image.
        descriptors: (n, d) descriptors (uint8 for ORB, float32 for SIFT).
        points: (n, 3) float64 points in the left camera frame (metres); NaN rows have no valid depth.
    """

    uv: np.ndarray
    descriptors: np.ndarray
    points: np.ndarray

    @property
    def has_point(self) -> np.ndarray:
        return np.isfinite(self.points[:, 2])


def make_detector(cfg: StereoConfig):
    if cfg.features == "sift":
        return cv2.SIFT_create(nfeatures=cfg.n_features)
    return cv2.ORB_create(nfeatures=cfg.n_features, fastThreshold=10)


def _refine_disparity(left: np.ndarray, right: np.ndarray, u: np.ndarray, v: np.ndarray,
                      d0: np.ndarray) -> np.ndarray:
    """Sub-pixel disparities (float64) at integer pixels ``(u, v)`` searched around ``d0``; NaN on failure."""
    h, w = left.shape
    r = PATCH // 2
    offsets = np.arange(-SEARCH - 1, SEARCH + 2)  # one extra on each side for the parabola
    d_int = np.rint(d0).astype(np.int64)
    ok = (u - r >= 0) & (u + r < w) & (v - r >= 0) & (v + r < h)
    ok &= (u - d_int - offsets[-1] - r >= 0) & (u - d_int - offsets[0] + r < w)
    out = np.full(len(u), np.nan)
    if not ok.any():
        return out
    u, v, d_int = u[ok], v[ok], d_int[ok]
    dy, dx = np.mgrid[-r: r + 1, -r: r + 1]
    flat = (v * w + u)[:, None] + (dy * w + dx).ravel()[None, :]           # (n, P) flat pixel indices
    patch_l = left.ravel()[flat]
    patch_l -= patch_l.mean(axis=1, keepdims=True)
    cand = d_int[:, None] + offsets[None, :]                                # (n, S)
    patch_r = right.ravel()[flat[:, None, :] - cand[:, :, None]]            # (n, S, P)
    patch_r -= patch_r.mean(axis=2, keepdims=True)
    cost = np.abs(patch_r - patch_l[:, None, :]).sum(axis=2)                # (n, S) zero-mean SAD
    inner = cost[:, 1:-1]
    best = np.argmin(inner, axis=1) + 1
    idx = np.arange(len(u))
    c0, c1, c2 = cost[idx, best - 1], cost[idx, best], cost[idx, best + 1]
    denom = c0 - 2 * c1 + c2
    delta = np.where(denom > 0, 0.5 * (c0 - c2) / np.where(denom > 0, denom, 1), 0.0)
    refined = cand[idx, best] + np.clip(delta, -0.5, 0.5)
    refined[refined <= 0] = np.nan
    out[np.flatnonzero(ok)] = refined
    return out


def stereo_features(grey_left: np.ndarray, grey_right: np.ndarray, depth_work: np.ndarray, K: np.ndarray,
                    baseline: float, detector, cfg: StereoConfig) -> StereoFeatures:
    """Keypoints of the full-resolution grey pair with metric 3-D points (see the module docstring).

    Args:
        grey_left, grey_right: HxW uint8 rectified pair.
        depth_work: hxw float32 dense depth (metres, 0 = invalid) at the working size ``H/f x W/f``.
        K: 3x3 intrinsics of the full-resolution left image.
        baseline: metres.
    """
    keypoints, desc = detector.detectAndCompute(grey_left, None)
    if desc is None or not keypoints:
        empty = np.zeros((0, 2), np.float32)
        return StereoFeatures(empty, np.zeros((0, 32), np.uint8), np.zeros((0, 3)))
    uv = np.array([kp.pt for kp in keypoints], np.float32)
    u, v = np.rint(uv[:, 0]).astype(np.int64), np.rint(uv[:, 1]).astype(np.int64)
    f = cfg.downsample
    hw, ww = depth_work.shape
    z0 = depth_work[np.clip(v // f, 0, hw - 1), np.clip(u // f, 0, ww - 1)]
    fx = float(K[0, 0])
    points = np.full((len(uv), 3), np.nan)
    has = z0 > 0
    if has.any():
        d = np.full(len(uv), np.nan)
        d[has] = _refine_disparity(grey_left.astype(np.float32), grey_right.astype(np.float32), u[has], v[has],
                                   fx * baseline / z0[has])
        with np.errstate(invalid="ignore", divide="ignore"):
            z = fx * baseline / d
            good = np.isfinite(z) & (relative_depth_error(z, fx, baseline, cfg.disparity_sigma) <= cfg.max_depth_error)
        # the keypoint's own (sub-pixel) position with the disparity found at its nearest pixel
        y = (uv[:, 1] - K[1, 2]) / K[1, 1]
        x = (uv[:, 0] - K[0, 2] - K[0, 1] * y) / fx
        points[good] = np.stack([x[good] * z[good], y[good] * z[good], z[good]], axis=1)
    return StereoFeatures(uv=uv, descriptors=desc, points=points)


def match(a: StereoFeatures, b: StereoFeatures, ratio: float, only_a_points: bool = True) -> np.ndarray:
    """(m, 2) index pairs (into a, into b) of descriptor matches passing Lowe's ratio test; with
    ``only_a_points`` only keypoints of ``a`` that have a 3-D point take part."""
    ia = np.flatnonzero(a.has_point) if only_a_points else np.arange(len(a.uv))
    if len(ia) < 2 or len(b.uv) < 2:
        return np.zeros((0, 2), np.int64)
    norm = cv2.NORM_HAMMING if a.descriptors.dtype == np.uint8 else cv2.NORM_L2
    knn = cv2.BFMatcher(norm).knnMatch(a.descriptors[ia], b.descriptors, k=2)
    pairs = [(ia[m[0].queryIdx], m[0].trainIdx) for m in knn
             if len(m) == 2 and m[0].distance < ratio * m[1].distance]
    return np.array(pairs, np.int64).reshape(-1, 2)


@dataclass
class PnpResult:
    """Pose of camera b in camera a's frame (``T_ab``, 4x4) from a's 3-D points and b's keypoints."""

    T_ab: np.ndarray
    inliers: np.ndarray  # indices into the match list
    n_matches: int
    rmse_px: float

    @property
    def n_inliers(self) -> int:
        return int(len(self.inliers))


def pnp(a: StereoFeatures, b: StereoFeatures, pairs: np.ndarray, K: np.ndarray, cfg: StereoConfig,
        guess_T_ab: np.ndarray | None = None) -> PnpResult | None:
    """PnP-RANSAC + LM refinement of b's camera against a's 3-D points; None with fewer than 6 matches or
    when RANSAC finds no model."""
    if len(pairs) < 6:
        return None
    obj = a.points[pairs[:, 0]].astype(np.float64)
    img = b.uv[pairs[:, 1]].astype(np.float64)
    K = np.asarray(K, np.float64)
    kwargs = {}
    if guess_T_ab is not None:
        T_ba = np.linalg.inv(guess_T_ab)
        kwargs = dict(rvec=cv2.Rodrigues(T_ba[:3, :3])[0], tvec=T_ba[:3, 3].reshape(3, 1).copy(),
                      useExtrinsicGuess=True)
    ok, rvec, tvec, inliers = cv2.solvePnPRansac(
        obj, img, K, None, iterationsCount=RANSAC_ITERATIONS, reprojectionError=cfg.reprojection_px,
        confidence=RANSAC_CONFIDENCE, flags=cv2.SOLVEPNP_ITERATIVE if guess_T_ab is not None else cv2.SOLVEPNP_EPNP,
        **kwargs)
    if not ok or inliers is None or len(inliers) < 6:
        return None
    inl = inliers.ravel()
    rvec, tvec = cv2.solvePnPRefineLM(obj[inl], img[inl], K, None, rvec, tvec)
    # re-select inliers under the refined pose, refine once more over them
    proj, _ = cv2.projectPoints(obj, rvec, tvec, K, None)
    err = np.linalg.norm(proj.reshape(-1, 2) - img, axis=1)
    inl = np.flatnonzero(err < cfg.reprojection_px)
    if len(inl) < 6:
        return None
    rvec, tvec = cv2.solvePnPRefineLM(obj[inl], img[inl], K, None, rvec, tvec)
    proj, _ = cv2.projectPoints(obj[inl], rvec, tvec, K, None)
    rmse = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - img[inl]) ** 2, axis=1))))
    T_ba = np.eye(4)
    T_ba[:3, :3] = cv2.Rodrigues(rvec)[0]
    T_ba[:3, 3] = tvec.ravel()
    return PnpResult(T_ab=np.linalg.inv(T_ba), inliers=inl, n_matches=len(pairs), rmse_px=rmse)
