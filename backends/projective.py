"""Projective point-to-plane association between keyframe pointmaps, shared by global alignment, loop
verification and the alignment's consistency check.

A keyframe's stored pointmap is a coarse grid (e.g. 40x30 at stride 8). A sampled point of the *source*
keyframe is mapped into the *destination* keyframe's camera and projected; the destination surface there is
the bilinear patch of the 2x2 grid cell the projection falls in (all four corners valid and no depth jump
across the cell). The interpolated point and the patch's normal make the residual a smooth function of the
poses: rounding to the nearest grid point instead biases alignments by a sizeable fraction of the grid
spacing (~6 cm at 2 m depth for stride 8 of a 320x240 map).

Poses are 4x4 Sim(3) ``T_wk`` (``[[s R, t], [0, 1]]``); all returned points and normals are in the world.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from slam import geometry
from slam.types import Keyframe

if TYPE_CHECKING:
    from backends.config import DepthNoiseConfig

#: a grid cell whose corner depths spread by more than this fraction of their mean spans a discontinuity
CELL_DEPTH_JUMP = 0.1
#: truncation of the normalised residual in :func:`consistency_error` (a gross misfit costs this much)
CONSISTENCY_CAP = 3.0


@dataclass
class PointView:
    """A keyframe prepared for alignment.

    Attributes:
        grid: (h, w, 3) float64 camera-frame points (keyframe units).
        valid: (h, w) bool.
        weight: (h, w) float64 confidence normalised by its median over valid points (clipped to [0, 3]).
        K: 3x3 intrinsics of the (h, w) grid.
        sample: (M,) flat indices of the valid pixels used as source points.
        sigma: (h, w) float64 predicted noise (standard deviation, keyframe units) of each point from the
            sensor's depth noise model (:func:`point_sigma`), or None (up-to-scale keyframe, or no model).
        cell_ok: ((h-1)*(w-1),) bool, derived: grid cell (top-left corner at row r, column c, flat index
            ``r * (w-1) + c``) that is a surface: all four corners valid, no depth jump, a defined normal.
        cell_normal: ((h-1)*(w-1), 3) float64, derived: the cell's unit normal in the camera frame (0 where
            not ``cell_ok``). Both depend on the grid alone, so they are computed once per view, not per
            association.
    """

    grid: np.ndarray
    valid: np.ndarray
    weight: np.ndarray
    K: np.ndarray
    sample: np.ndarray
    sigma: np.ndarray | None = None
    cell_ok: np.ndarray = field(init=False, repr=False)
    cell_normal: np.ndarray = field(init=False, repr=False)

    def with_sample(self, sample: np.ndarray) -> "PointView":
        """A copy with other source ``sample`` indices that shares every array (cell tables included)."""
        view = copy.copy(self)
        view.sample = sample
        return view

    def __post_init__(self) -> None:
        g = self.grid
        p00, p01, p10, p11 = g[:-1, :-1], g[:-1, 1:], g[1:, :-1], g[1:, 1:]  # top-left, right, below, below-right
        ok = self.valid[:-1, :-1] & self.valid[:-1, 1:] & self.valid[1:, :-1] & self.valid[1:, 1:]
        z = np.stack([p00[..., 2], p01[..., 2], p10[..., 2], p11[..., 2]], -1)
        with np.errstate(invalid="ignore"):
            ok &= (z.max(-1) - z.min(-1)) < CELL_DEPTH_JUMP * z.mean(-1)
        normal = np.cross(p01 - p00 + p11 - p10, p10 - p00 + p11 - p01)
        norm = np.linalg.norm(normal, axis=-1)
        ok &= norm > 0
        normal = np.where(ok[..., None], normal / np.maximum(np.where(ok, norm, 1.0), 1e-12)[..., None], 0.0)
        self.cell_ok = ok.reshape(-1)
        self.cell_normal = normal.reshape(-1, 3)


def point_sigma(z: np.ndarray, noise: "DepthNoiseConfig") -> np.ndarray:
    """Predicted noise (m, standard deviation) of a metric point at depth ``z`` (m, any shape):
    ``sqrt((axial z^2)^2 + (lateral z)^2)``, axial noise of a triangulating sensor plus lateral pixel noise
    (an upper bound of the noise along any direction, e.g. a surface normal)."""
    z = np.abs(np.asarray(z, dtype=np.float64))
    return np.hypot(noise.axial * z * z, noise.lateral * z)


def prepare_view(kf: Keyframe, max_points: int, min_confidence: float,
                 noise: "DepthNoiseConfig | None" = None) -> PointView:
    """View of a keyframe with at most ``max_points`` evenly spread source samples.

    With a ``noise`` model that is enabled and a metric keyframe, the view carries each point's predicted
    noise (``sigma``); up-to-scale keyframes never do (their units are arbitrary)."""
    grid = kf.points.astype(np.float64)
    conf = kf.confidence.astype(np.float64)
    valid = (conf > min_confidence) & np.isfinite(grid).all(-1) & (grid[..., 2] > 0)
    weight = np.zeros_like(conf)
    if valid.any():
        weight[valid] = np.clip(conf[valid] / np.median(conf[valid]), 0.0, 3.0)
    flat = np.flatnonzero(valid)
    if len(flat) > max_points:
        flat = flat[np.linspace(0, len(flat) - 1, max_points).astype(int)]
    sigma = None
    if noise is not None and noise.enabled and kf.metric:
        sigma = np.where(valid, point_sigma(grid[..., 2], noise), np.inf)
    return PointView(grid, valid, weight, np.asarray(kf.K, dtype=np.float64), flat, sigma)


def view_median_depth(view: PointView) -> float:
    """Median depth of a view's valid points (keyframe units); 0.0 when it has none."""
    return float(np.median(view.grid[view.valid][:, 2])) if view.valid.any() else 0.0


@dataclass
class Correspondences:
    """Source points paired with the destination surface (all arrays (M, ...) over accepted pairs).

    Attributes:
        y_src, y_dst: (M, 3) world points of the source sample and of the interpolated destination surface.
        normal: (M, 3) world unit normals of the destination surface.
        weight: (M,) product of both sides' normalised confidences.
        depth: (M,) depth of the source point in the destination camera (world units).
        var: (M,) predicted variance (world units^2) of the residual from both points' noise, sum of the
            source's and the interpolated destination's ``sigma^2``; None unless both views carry ``sigma``.
        n_visible: source samples that project onto a valid destination cell (before the distance gate).
        n_samples: source samples tried.
    """

    y_src: np.ndarray
    y_dst: np.ndarray
    normal: np.ndarray
    weight: np.ndarray
    depth: np.ndarray
    n_visible: int
    n_samples: int
    var: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.weight)


def associate(src: PointView, dst: PointView, P_src: np.ndarray, P_dst: np.ndarray,
              max_distance: float) -> Correspondences:
    """Projective correspondences ``src -> dst`` gated by 3-D distance < ``max_distance`` x depth."""
    x_src = src.grid.reshape(-1, 3)[src.sample]
    y_src = geometry.transform_points(P_src, x_src)
    q = geometry.transform_points(geometry.inverse_pose(P_dst), y_src)
    uv, z = geometry.project_points(q, dst.K)
    u, v = uv[:, 0], uv[:, 1]
    h, w = dst.valid.shape
    inside = np.flatnonzero((z > 1e-9) & (u >= 0) & (u < w - 1) & (v >= 0) & (v < h - 1))
    u, v = u[inside], v[inside]
    u0, v0 = np.minimum(u.astype(np.int64), w - 2), np.minimum(v.astype(np.int64), h - 2)
    cell = v0 * (w - 1) + u0
    surface = dst.cell_ok[cell]  # the projection lands on a valid surface cell: "visible"
    idx, u, v, u0, v0, cell = inside[surface], u[surface], v[surface], u0[surface], v0[surface], cell[surface]
    fu, fv = u - u0, v - v0
    i00 = v0 * w + u0
    corners = (i00, i00 + 1, i00 + w, i00 + w + 1)  # top-left, right, below, below-right
    bilinear = ((1 - fu) * (1 - fv), fu * (1 - fv), (1 - fu) * fv, fu * fv)
    flat, wflat = dst.grid.reshape(-1, 3), dst.weight.ravel()
    x_dst = sum(b[:, None] * flat[c] for b, c in zip(bilinear, corners))
    y_dst = geometry.transform_points(P_dst, x_dst)
    y = y_src[idx]
    s_dst = float(geometry.similarity_scale(P_dst))
    depth = np.abs(z[idx]) * s_dst
    weight = src.weight.ravel()[src.sample[idx]] * sum(b * wflat[c] for b, c in zip(bilinear, corners))
    keep = (np.linalg.norm(y_dst - y, axis=1) < max_distance * depth) & (weight > 0)
    normal = dst.cell_normal[cell[keep]] @ geometry.rotation_part(P_dst).T  # camera -> world normals
    var = None
    if src.sigma is not None and dst.sigma is not None:
        sflat = dst.sigma.ravel()
        s_dst2 = sum(b[keep] * sflat[c[keep]] ** 2 for b, c in zip(bilinear, corners))
        s_src2 = src.sigma.ravel()[src.sample[idx[keep]]] ** 2
        var = s_src2 * geometry.similarity_scale(P_src) ** 2 + s_dst2 * s_dst**2
    return Correspondences(y[keep], y_dst[keep], normal, weight[keep], depth[keep], len(idx), len(x_src), var)


def consistency_error(views: dict[int, PointView], poses: dict[int, np.ndarray], pairs: list[tuple[int, int]],
                      scale: float) -> tuple[float, int]:
    """Mean truncated point-to-plane error of keyframe pairs at ``poses`` (both directions).

    Every source sample that lands on a valid destination cell counts: its point-to-plane distance divided
    by ``scale`` x depth, squared and truncated at :data:`CONSISTENCY_CAP`^2 (points beyond the association
    gate of ``CONSISTENCY_CAP`` x ``scale`` count as the cap). Returns (mean error, points counted); a pose
    change that pulls surfaces apart raises it, one that brings them together lowers it.
    """
    total, count = 0.0, 0
    for a, b in pairs:
        for s, d in ((a, b), (b, a)):
            c = associate(views[s], views[d], poses[s], poses[d], CONSISTENCY_CAP * scale)
            r = np.abs(np.einsum("mi,mi->m", c.normal, c.y_dst - c.y_src)) / (scale * c.depth)
            total += float(np.sum(np.minimum(r, CONSISTENCY_CAP) ** 2))
            total += CONSISTENCY_CAP**2 * (c.n_visible - len(c))
            count += c.n_visible
    return (total / count if count else float("nan")), count
