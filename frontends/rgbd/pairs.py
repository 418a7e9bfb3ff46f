"""Pair estimates between two arbitrary RGB-D views (loop closures, re-localisation), from scratch.

A cascade of initial guesses, each refined by dense odometry (one extra, coarser pyramid level), stops as
soon as an estimate is verified:

1. the identity (nearby views),
2. SIFT matches + RANSAC PnP (textured views, see :func:`~frontends.rgbd.features.feature_pose`),
3. FPFH + RANSAC on the point clouds (distinctive geometry, see :func:`~frontends.rgbd.features.geometric_pose`),
4. rotated starts (``cfg.pair_starts - 1`` of them, yaw/pitch/roll perturbations of the identity).

Every candidate is scored by :func:`score_pair`: ``b``'s pixels are moved into ``a`` and must land on a
pixel of ``a`` whose depth agrees and whose neighbourhood looks the same (normalised cross-correlation of
grey values in small cells). Depth alone is not enough in rooms made of planes (a box room agrees with
itself in many wrong poses); appearance breaks those ties.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from frontends.rgbd.config import RgbdConfig
from frontends.rgbd.features import feature_pose, geometric_pose
from frontends.rgbd.odometry import RgbdView, estimate_motion
from slam.geometry import project_points, transform_points

#: an estimate is accepted without trying further guesses when this fraction of b's pixels that land on
#: valid depth in a agree (and ``MIN_VERIFIED_AGREEMENT`` of all of b's valid pixels do)
VERIFIED_CONSISTENCY = 0.85
MIN_VERIFIED_AGREEMENT = 0.25
#: appearance check: cell size (pixels), grey std (of [0, 1]) above which a cell counts as textured, and
#: the normalised cross-correlation a textured cell needs
CELL = 8
TEXTURE_STD = 0.01
MIN_NCC = 0.5
#: (axis, degrees) rotations of the extra initial guesses
PERTURBATIONS = ((1, 15.0), (1, -15.0), (0, 10.0), (0, -10.0), (2, 10.0), (2, -10.0), (1, 30.0), (1, -30.0))


@dataclass
class PairScore:
    """How well ``T_ab`` explains view b by view a.

    Attributes:
        agreement: fraction of b's valid pixels whose point lands in a on a pixel with agreeing depth
            (within ``pair_inlier_distance`` of the depth) and agreeing appearance around it (see
            :func:`_appearance_agrees`).
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


def _appearance_agrees(ga: np.ndarray, gb: np.ndarray, rows: np.ndarray, cols: np.ndarray, use: np.ndarray,
                       width: int, grey_distance: float) -> np.ndarray:
    """Per sample: does the appearance around it agree? Samples are grouped into ``CELL`` x ``CELL`` cells
    of a's image; a textured cell agrees when the normalised cross-correlation of a's and b's grey values
    in it exceeds ``MIN_NCC`` (invariant to exposure, near 0 for misregistered texture), a flat cell when
    its mean grey values differ by less than ``grey_distance`` (after the median difference over all
    ``use`` samples, a global exposure change, is removed). Cells with fewer than ``CELL`` samples fail."""
    cells = (rows // CELL) * (width // CELL + 1) + cols // CELL
    k = cells[use]
    a, b = ga[use].astype(np.float64), gb[use].astype(np.float64)
    size = int(cells.max()) + 1 if len(cells) else 1
    n = np.bincount(k, minlength=size).astype(np.float64)
    m = np.maximum(n, 1)
    mean_a, mean_b = np.bincount(k, a, size) / m, np.bincount(k, b, size) / m
    var_a = np.bincount(k, a * a, size) / m - mean_a**2
    var_b = np.bincount(k, b * b, size) / m - mean_b**2
    cov = np.bincount(k, a * b, size) / m - mean_a * mean_b
    textured = (var_a > TEXTURE_STD**2) & (var_b > TEXTURE_STD**2)
    ncc = cov / np.sqrt(np.maximum(var_a * var_b, 1e-12))
    offset = float(np.median(a - b)) if len(a) else 0.0
    flat_ok = np.abs(mean_a - mean_b - offset) < grey_distance
    cell_ok = (n >= CELL) & np.where(textured, ncc > MIN_NCC, flat_ok)
    return cell_ok[cells]


def score_pair(a: RgbdView, b: RgbdView, T_ab: np.ndarray, grey_a: np.ndarray, grey_b: np.ndarray,
               cfg: RgbdConfig) -> PairScore:
    """Score ``T_ab`` (pose of b in a's frame) by depth and appearance agreement, see :class:`PairScore`."""
    valid_b = b.depth > 0
    n = int(valid_b.sum())
    if n == 0 or not np.isfinite(T_ab).all():
        return PairScore()
    pts = transform_points(T_ab, b.points()[valid_b].astype(np.float64))
    uv, z = project_points(pts, a.K)
    h, w = a.size
    with np.errstate(invalid="ignore"):
        u, v = np.round(uv[:, 0]), np.round(uv[:, 1])
        inside = (z > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    rows, cols = v[inside].astype(np.int64), u[inside].astype(np.int64)
    za = a.depth[rows, cols]
    landed = za > 0
    depth_ok = landed & (np.abs(za - z[inside]) < cfg.pair_inlier_distance * z[inside])
    agree = depth_ok & _appearance_agrees(grey_a[rows, cols], grey_b[valid_b][inside], rows, cols, depth_ok,
                                          w, cfg.pair_grey_distance)
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
    rotations = PERTURBATIONS[: cfg.pair_starts - 1]
    guesses += [(f"rotation{k}", (lambda R=_rotation(*p): R)) for k, p in enumerate(rotations)]
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
