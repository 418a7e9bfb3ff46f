"""Robust Sim(3)/SE(3) alignment of 3D point sets: weighted Umeyama, RANSAC over correspondences, and a
robust (trimmed, Huber-weighted) point-to-point ICP for sets without known correspondences.

Every function returns 4x4 matrices ``[[s R, t], [0, 1]]`` mapping ``src`` points onto ``dst`` points
(``dst ~ s R src + t``); ``with_scale=False`` gives ``s = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from backends import sim3


def umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None,
            with_scale: bool = True) -> np.ndarray:
    """Weighted least-squares similarity (or rigid) transform from (N, 3) ``src`` to (N, 3) ``dst``."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / max(w.sum(), 1e-12)
    mu_s, mu_d = w @ src, w @ dst
    xs, xd = src - mu_s, dst - mu_d
    cov = (xd * w[:, None]).T @ xs
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1
    R = U @ D @ Vt
    if with_scale:
        var_s = float(w @ (xs**2).sum(1))
        s = float(np.trace(np.diag(S) @ D)) / max(var_s, 1e-12)
    else:
        s = 1.0
    return sim3.make_sim3(R, mu_d - s * R @ mu_s, s)


def ransac_umeyama(src: np.ndarray, dst: np.ndarray, threshold: float | np.ndarray, with_scale: bool = True,
                   iterations: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """RANSAC over 3-point samples of corresponding (N, 3) points, refined on the inliers.

    ``threshold`` is the inlier distance in ``dst`` units (scalar or per point). Returns (4x4, inlier mask).
    """
    n = len(src)
    if n < 3:
        return np.eye(4), np.zeros(n, dtype=bool)
    rng = np.random.default_rng(seed)
    best = np.zeros(n, dtype=bool)
    for _ in range(iterations):
        idx = rng.choice(n, 3, replace=False)
        T = umeyama(src[idx], dst[idx], with_scale=with_scale)
        inl = np.linalg.norm(sim3.transform_points(T, src) - dst, axis=1) < threshold
        if inl.sum() > best.sum():
            best = inl
    if best.sum() < 3:
        return np.eye(4), best
    T = umeyama(src[best], dst[best], with_scale=with_scale)
    inl = np.linalg.norm(sim3.transform_points(T, src) - dst, axis=1) < threshold
    if inl.sum() >= 3:
        T = umeyama(src[inl], dst[inl], with_scale=with_scale)
    return T, inl


@dataclass
class IcpResult:
    """Outcome of :func:`robust_icp`.

    Attributes:
        T: 4x4 transform src -> dst.
        inlier_ratio: fraction of src points with a dst neighbour closer than the inlier distance.
        rmse: RMS distance of those inliers (dst units).
        iterations: iterations run.
    """

    T: np.ndarray
    inlier_ratio: float
    rmse: float
    iterations: int


def robust_icp(src: np.ndarray, dst: np.ndarray, init: np.ndarray, inlier_distance: float | np.ndarray,
               with_scale: bool = False, iterations: int = 30, tree: cKDTree | None = None) -> IcpResult:
    """Point-to-point ICP from (N, 3) ``src`` to (M, 3) ``dst``, starting at ``init``.

    Correspondences are nearest neighbours closer than ``3 * inlier_distance`` (per src point or scalar,
    dst units), weighted by a Huber kernel of width ``inlier_distance``. The inlier ratio is measured
    with ``inlier_distance`` at the final transform.
    """
    tree = cKDTree(dst) if tree is None else tree
    T = np.asarray(init, dtype=np.float64).copy()
    gate = 3.0 * np.asarray(inlier_distance, dtype=np.float64)
    it = 0
    for it in range(1, iterations + 1):
        moved = sim3.transform_points(T, src)
        dist, idx = tree.query(moved, distance_upper_bound=float(np.max(gate)))
        ok = np.isfinite(dist) & (dist < gate)
        if ok.sum() < 6:
            break
        r = dist[ok] / np.broadcast_to(inlier_distance, dist.shape)[ok]
        w = np.minimum(1.0, 1.0 / np.maximum(r, 1e-9))
        T_new = umeyama(src[ok], dst[idx[ok]], w, with_scale=with_scale)
        step = sim3.relative(T, T_new)
        T = T_new
        if np.linalg.norm(step[:3, 3]) < 1e-6 * (1 + np.linalg.norm(T[:3, 3])) and \
                sim3.rotation_angle(sim3.rotation_of(step)) < 1e-6:
            break
    dist, _ = tree.query(sim3.transform_points(T, src))
    inl = dist < np.asarray(inlier_distance)
    ratio = float(inl.mean()) if len(src) else 0.0
    rmse = float(np.sqrt(np.mean(dist[inl] ** 2))) if inl.any() else float("inf")
    return IcpResult(T=T, inlier_ratio=ratio, rmse=rmse, iterations=it)
