"""Pair estimates between two arbitrary RGB-D views (loop closures, re-localisation), from scratch.

A cascade of initial guesses, each refined by dense odometry (one extra, coarser pyramid level), stops as
soon as an estimate is verified:

1. the identity (nearby views),
2. SIFT matches + RANSAC PnP (textured views, see :func:`~frontends.rgbd.features.feature_pose`),
3. FPFH + RANSAC on the point clouds (distinctive geometry, see :func:`~frontends.rgbd.features.geometric_pose`),
4. rotated starts (``cfg.pair_starts - 1`` of them, yaw/pitch/roll perturbations of the identity).

Every candidate is scored by :func:`score_pair`: ``b``'s pixels are moved into ``a`` and must land on a
pixel of ``a`` whose depth *and* grey value agree. Depth alone is not enough in rooms made of planes (a
box room agrees with itself in many wrong poses); colour breaks those ties.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from frontends.rgbd.config import RgbdConfig
from frontends.rgbd.features import feature_pose, geometric_pose
from frontends.rgbd.odometry import RgbdView, estimate_motion
from slam.pointmaps import project_points

#: an estimate is accepted without trying further guesses when this fraction of b's pixels that land on
#: valid depth in a agree (and ``MIN_VERIFIED_AGREEMENT`` of all of b's valid pixels do)
VERIFIED_CONSISTENCY = 0.85
MIN_VERIFIED_AGREEMENT = 0.25
#: (axis, degrees) rotations of the extra initial guesses
PERTURBATIONS = ((1, 15.0), (1, -15.0), (0, 10.0), (0, -10.0), (2, 10.0), (2, -10.0), (1, 30.0), (1, -30.0))


@dataclass
class PairScore:
    """How well ``T_ab`` explains view b by view a.

    Attributes:
        agreement: fraction of b's valid pixels whose point lands in a on a pixel with agreeing depth
            (within ``pair_inlier_distance`` of the depth) and grey value (within ``pair_grey_distance``).
        overlap: fraction of b's valid pixels that land in a's image on a pixel with valid depth.
        consistency: agreement / overlap (how much of the shared view agrees).
    """

    agreement: float = 0.0
    overlap: float = 0.0
    consistency: float = 0.0

    @property
    def verified(self) -> bool:
        return self.consistency >= VERIFIED_CONSISTENCY and self.agreement >= MIN_VERIFIED_AGREEMENT


def grey_image(view: RgbdView) -> np.ndarray:
    """hxw float32 grey values in [0, 1], lightly blurred (tolerance to sub-pixel misalignment)."""
    grey = cv2.cvtColor(view.rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    return cv2.GaussianBlur(grey, (5, 5), 1.0)


def score_pair(a: RgbdView, b: RgbdView, T_ab: np.ndarray, grey_a: np.ndarray, grey_b: np.ndarray,
               cfg: RgbdConfig) -> PairScore:
    """Score ``T_ab`` (pose of b in a's frame) by depth and grey-value agreement, see :class:`PairScore`."""
    valid_b = b.depth > 0
    n = int(valid_b.sum())
    if n == 0 or not np.isfinite(T_ab).all():
        return PairScore()
    pts = b.points()[valid_b].astype(np.float64) @ T_ab[:3, :3].T + T_ab[:3, 3]
    uv, z = project_points(pts, a.K)
    h, w = a.size
    with np.errstate(invalid="ignore"):
        u, v = np.round(uv[:, 0]), np.round(uv[:, 1])
        inside = (z > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    rows, cols = v[inside].astype(np.int64), u[inside].astype(np.int64)
    za = a.depth[rows, cols]
    landed = za > 0
    depth_ok = landed & (np.abs(za - z[inside]) < cfg.pair_inlier_distance * z[inside])
    grey_diff = grey_a[rows, cols] - grey_b[valid_b][inside]
    if depth_ok.any():  # compensate a global brightness change between the two exposures
        grey_diff = grey_diff - np.median(grey_diff[depth_ok])
    agree = depth_ok & (np.abs(grey_diff) < cfg.pair_grey_distance)
    overlap = float(landed.sum()) / n
    agreement = float(agree.sum()) / n
    return PairScore(agreement, overlap, agreement / overlap if overlap > 0 else 0.0)


def _rotation(axis: int, degrees: float) -> np.ndarray:
    T = np.eye(4)
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    T[i, i] = T[j, j] = c
    T[i, j], T[j, i] = -s, s
    return T


def estimate_pair(a: RgbdView, b: RgbdView, cfg: RgbdConfig) -> tuple[np.ndarray, PairScore, dict[str, Any]]:
    """Pose of b in a's camera frame by the cascade of the module docstring.

    Returns:
        ``(T_ab, score, info)``: the best-scoring estimate, its :class:`PairScore`, and diagnostics
        (which guess won, how many dense solves ran, feature inlier counts).
    """
    grey_a, grey_b = grey_image(a), grey_image(b)
    iterations = [20, *cfg.iterations]
    best_T, best, best_kind = np.eye(4), PairScore(), "none"
    info: dict[str, Any] = {"dense_solves": 0}

    def consider(kind: str, T: np.ndarray) -> None:
        nonlocal best_T, best, best_kind
        score = score_pair(a, b, T, grey_a, grey_b, cfg)
        if score.agreement > best.agreement:
            best_T, best, best_kind = T, score, kind

    def refine(kind: str, start: np.ndarray) -> None:
        info["dense_solves"] += 1
        est = estimate_motion(b, a, start, cfg, iterations)
        if est.ok:
            consider(kind, est.T_target_source)

    def sift_start() -> np.ndarray | None:
        found = feature_pose(a, b)
        info["sift_inliers"] = 0 if found is None else found[1]
        return None if found is None else found[0]

    def fpfh_start() -> np.ndarray | None:
        found = geometric_pose(a, b)
        info["fpfh_fitness"] = 0.0 if found is None else round(found[1], 4)
        return None if found is None else found[0]

    guesses: list[tuple[str, Any]] = [("identity", lambda: np.eye(4))]
    if cfg.pair_global:
        guesses += [("sift", sift_start), ("fpfh", fpfh_start)]
    guesses += [(f"rotation{k}", (lambda R=_rotation(*p): R)) for k, p in enumerate(PERTURBATIONS[: cfg.pair_starts - 1])]
    for kind, make in guesses:
        start = make()
        if start is None:
            continue
        if kind in ("sift", "fpfh"):
            consider(kind, start)
        refine(kind + "+dense", start)
        if best.verified:
            break
    info.update(method=best_kind, agreement=round(best.agreement, 4), overlap=round(best.overlap, 4),
                consistency=round(best.consistency, 4))
    return best_T, best, info
