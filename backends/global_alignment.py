"""Sparse global alignment: refine keyframe Sim(3)/SE(3) poses by aligning keyframe pointmaps along edges.

In the spirit of CUT3R's ``demo_ga.py`` (which aligns all pairs, O(N^2)), but only along the pose graph's
edges plus short covisibility edges ``(i, i+2 .. i+1+skip_edges)``: the cost is linear in the number of
edges. For each edge and each direction, the source keyframe's sampled points are mapped to the world,
projected into the other keyframe's (downsampled) image and paired with the point stored at that pixel
(projective data association, gated by distance relative to depth). Residuals are world-space point
differences, whitened by ``huber * depth`` and weighted by both points' normalised confidences and a Huber
kernel. Each outer iteration re-associates and takes one damped Gauss-Newton step on all poses jointly
(left-multiplicative update ``P <- Exp(delta) P``, ``delta = (omega, v, log s)``; the first keyframe is
fixed; SE(3) mode keeps every scale at 1). A graph edge whose keyframes share too few correspondences
contributes "virtual" point pairs built from its relative pose in the input solution instead, so the
problem stays connected; every graph edge also contributes them with a small weight (``prior_weight``),
which holds the directions that geometry leaves free (sliding along a wall) at the pose-graph solution.

The result replaces the measurement of every edge that had enough real correspondences by the aligned
relative pose, so that the re-seeded pose graph reproduces the aligned poses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.spatial.transform import Rotation

from backends import sim3
from backends.config import GlobalAlignmentConfig
from backends.pose_graph import Edge
from slam.types import Keyframe

MIN_CORRESPONDENCES = 30
DAMPING = 1e-4


@dataclass
class _View:
    """A keyframe prepared for alignment: grid, validity, normalised confidence, sampled pixels."""

    grid: np.ndarray  # (h, w, 3) float64 camera-frame points
    valid: np.ndarray  # (h, w) bool
    weight: np.ndarray  # (h, w) float64 normalised confidence
    K: np.ndarray
    sample: np.ndarray  # (M,) flat indices of sampled valid pixels
    normals: np.ndarray  # (h*w, 3) camera-frame unit normals (0 where unknown)


def _prepare(kf: Keyframe, max_points: int, min_confidence: float) -> _View:
    grid = kf.points.astype(np.float64)
    conf = kf.confidence.astype(np.float64)
    valid = (conf > min_confidence) & np.isfinite(grid).all(-1) & (grid[..., 2] > 0)
    weight = np.zeros_like(conf)
    if valid.any():
        weight[valid] = np.clip(conf[valid] / np.median(conf[valid]), 0.0, 3.0)
    flat = np.flatnonzero(valid)
    if len(flat) > max_points:
        flat = flat[np.linspace(0, len(flat) - 1, max_points).astype(int)]
    return _View(grid, valid, weight, kf.K, flat, _normals(grid, valid).reshape(-1, 3))


def _normals(grid: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(h, w, 3) unit normals of a camera-frame pointmap from central differences (0 at the border)."""
    n = np.zeros_like(grid)
    du = grid[1:-1, 2:] - grid[1:-1, :-2]
    dv = grid[2:, 1:-1] - grid[:-2, 1:-1]
    c = np.cross(du, dv)
    ok = valid[1:-1, 2:] & valid[1:-1, :-2] & valid[2:, 1:-1] & valid[:-2, 1:-1]
    norm = np.linalg.norm(c, axis=-1)
    ok &= norm > 0
    c[ok] /= norm[ok][:, None]
    c[~ok] = 0.0
    n[1:-1, 1:-1] = c
    return n


def _associate(src: _View, dst: _View, P_src: np.ndarray, P_dst: np.ndarray, cfg: GlobalAlignmentConfig):
    """Projective correspondences src -> dst: world points (M, 3) y_src, y_dst, weights, sigmas."""
    x_src = src.grid.reshape(-1, 3)[src.sample]
    y_src = sim3.transform_points(P_src, x_src)
    q = sim3.transform_points(sim3.inverse(P_dst), y_src)
    z = q[:, 2]
    h, w = dst.valid.shape
    front = z > 1e-9
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.rint(dst.K[0, 0] * q[:, 0] / z + dst.K[0, 2])
        v = np.rint(dst.K[1, 1] * q[:, 1] / z + dst.K[1, 2])
    ok = front & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    idx = np.where(ok, np.nan_to_num(v * w + u, nan=0.0), 0.0).astype(np.int64)
    ok &= dst.valid.ravel()[idx]
    s_dst = sim3.scale_of(P_dst)
    y_dst = sim3.transform_points(P_dst, dst.grid.reshape(-1, 3)[idx])
    depth = np.abs(z) * s_dst
    ok &= np.linalg.norm(y_dst - y_src, axis=1) < cfg.max_distance * depth
    weight = src.weight.ravel()[src.sample] * dst.weight.ravel()[idx]
    normal = dst.normals[idx] @ sim3.rotation_of(P_dst).T
    ok &= (weight > 0) & (np.abs(normal).sum(1) > 0)
    return y_src[ok], y_dst[ok], weight[ok], cfg.huber * depth[ok], normal[ok]


def _virtual(src: _View, P_src: np.ndarray, P_dst: np.ndarray, T_dst_src: np.ndarray, cfg: GlobalAlignmentConfig,
             weight: float):
    """Point pairs that encode the measurement ``T_dst_src`` (used when an edge lacks real overlap)."""
    x_src = src.grid.reshape(-1, 3)[src.sample[:: max(1, len(src.sample) // 200)]]
    y_src = sim3.transform_points(P_src, x_src)
    y_dst = sim3.transform_points(P_dst @ T_dst_src, x_src)
    depth = np.abs(x_src[:, 2]) * sim3.scale_of(P_src)
    return y_src, y_dst, np.full(len(x_src), weight * len(src.sample) / len(x_src)), cfg.huber * depth, None


def _jacobian(y: np.ndarray) -> np.ndarray:
    """(M, 3, 7) derivative of ``Exp(delta) y`` at delta = 0 w.r.t. (omega, v, log s)."""
    J = np.zeros((len(y), 3, 7))
    x, yy, z = y[:, 0], y[:, 1], y[:, 2]
    J[:, 0, 1], J[:, 0, 2] = z, -yy
    J[:, 1, 0], J[:, 1, 2] = -z, x
    J[:, 2, 0], J[:, 2, 1] = yy, -x
    J[:, 0, 3] = J[:, 1, 4] = J[:, 2, 5] = 1.0
    J[:, :, 6] = y
    return J


def _exp(delta: np.ndarray) -> np.ndarray:
    return sim3.make_sim3(Rotation.from_rotvec(delta[:3]).as_matrix(), delta[3:6], float(np.exp(delta[6])))


def align_keyframes(keyframes: dict[int, Keyframe], poses: dict[int, np.ndarray], edges: list[Edge],
                    cfg: GlobalAlignmentConfig, min_confidence: float, use_sim3: bool
                    ) -> tuple[dict[int, np.ndarray], list[Edge], dict]:
    """Align keyframe pointmaps along ``edges`` (+ covisibility edges); returns (poses, edges, stats).

    ``poses`` are 4x4 Sim(3) ``T_wk``; returned edges are copies with refined measurements where the edge had
    at least ``MIN_CORRESPONDENCES`` real correspondences in the last iteration.
    """
    ids = sorted(k for k in keyframes if k in poses)
    if len(ids) < 2:
        return dict(poses), list(edges), {"pairs": 0}
    col = {k: i for i, k in enumerate(ids)}
    views = {k: _prepare(keyframes[k], cfg.max_points, min_confidence) for k in ids}
    P = {k: np.asarray(poses[k], dtype=np.float64).copy() for k in ids}
    # each graph edge's relative pose in the input solution (which already fuses odometry and loops)
    measured: dict[tuple[int, int], np.ndarray] = {}
    for e in edges:
        if e.a in col and e.b in col and e.a != e.b:
            measured.setdefault((e.a, e.b), sim3.relative(P[e.a], P[e.b]))
    pairs = set()
    for a, b in measured:
        pairs.add((min(a, b), max(a, b)))
    for i, k in enumerate(ids):
        for j in ids[i + 2: i + 2 + cfg.skip_edges]:
            pairs.add((k, j))
    pairs = sorted(pairs)
    dof = 7 if use_sim3 else 6
    n = len(ids)
    stats = {"pairs": len(pairs), "iterations": cfg.iterations}
    real_count: dict[tuple[int, int], int] = {}
    for it in range(cfg.iterations + 1):
        blocks: dict[tuple[int, int], np.ndarray] = {}
        g = np.zeros((n, 7))
        cost = 0.0
        total = 0
        for a, b in pairs:
            terms = []
            n_real = 0
            for s, d in ((a, b), (b, a)):
                y_s, y_d, w, sig, nrm = _associate(views[s], views[d], P[s], P[d], cfg)
                n_real += len(w)
                terms.append((s, d, y_s, y_d, w, sig, nrm))
            real_count[(a, b)] = n_real
            # the graph's measurement of this edge as virtual point pairs: a weak prior that pins directions
            # the geometry leaves free, and the whole constraint when the edge lacks real overlap
            prior_w = cfg.prior_weight if n_real >= MIN_CORRESPONDENCES else 1.0
            if n_real < MIN_CORRESPONDENCES:
                terms = []
            if (a, b) in measured:
                terms.append((b, a, *_virtual(views[b], P[b], P[a], measured[(a, b)], cfg, prior_w)))
            elif (b, a) in measured:
                terms.append((a, b, *_virtual(views[a], P[a], P[b], measured[(b, a)], cfg, prior_w)))
            for s, d, y_s, y_d, w, sig, nrm in terms:
                if len(w) == 0:
                    continue
                r = y_d - y_s
                Jd, Js = _jacobian(y_d), -_jacobian(y_s)
                if nrm is not None:  # point-to-plane along the target normal
                    r = np.einsum("mi,mi->m", nrm, r)[:, None]
                    Jd = np.einsum("mi,mij->mj", nrm, Jd)[:, None, :]
                    Js = np.einsum("mi,mij->mj", nrm, Js)[:, None, :]
                rn = np.linalg.norm(r, axis=1) / sig
                hub = np.minimum(1.0, 1.0 / np.maximum(rn, 1e-12))
                W = w * hub / sig**2
                cost += float(np.sum(w * np.where(rn <= 1, 0.5 * rn**2, rn - 0.5)))
                total += len(w)
                WJd, WJs = W[:, None, None] * Jd, W[:, None, None] * Js
                for (i, Ji, WJi) in ((d, Jd, WJd), (s, Js, WJs)):
                    g[col[i]] += np.einsum("mij,mi->j", WJi, r)
                    for (j, Jj) in ((d, Jd), (s, Js)):
                        key = (col[i], col[j])
                        blocks[key] = blocks.get(key, 0.0) + np.einsum("mij,mik->jk", WJi, Jj)
        if it == 0:
            stats["initial_cost"] = round(cost / max(total, 1), 6)
            stats["initial_correspondences"] = total
        if it == cfg.iterations:
            stats["final_cost"] = round(cost / max(total, 1), 6)
            stats["final_correspondences"] = total
            break
        delta = _solve(blocks, g, n, dof)
        for k in ids:
            P[k] = _exp(delta[col[k]]) @ P[k]
    out_edges = []
    for e in edges:
        key = (min(e.a, e.b), max(e.a, e.b))
        if real_count.get(key, 0) >= MIN_CORRESPONDENCES and e.a in P and e.b in P:
            e = dataclasses.replace(e, T_ab=sim3.relative(P[e.a], P[e.b]), info={**e.info, "aligned": True})
        out_edges.append(e)
    new_poses = dict(poses)
    new_poses.update(P)
    return new_poses, out_edges, stats


def _solve(blocks: dict[tuple[int, int], np.ndarray], g: np.ndarray, n: int, dof: int) -> np.ndarray:
    """Damped Gauss-Newton step for all poses but the first (fixed); returns (n, 7) deltas."""
    rows, cols, vals = [], [], []
    base = np.arange(dof)
    for (i, j), B in blocks.items():
        if i == 0 or j == 0:
            continue
        r = (i - 1) * dof + base
        c = (j - 1) * dof + base
        rows.append(np.repeat(r, dof))
        cols.append(np.tile(c, dof))
        vals.append(B[:dof, :dof].ravel())
    m = (n - 1) * dof
    if not rows:
        return np.zeros((n, 7))
    H = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m, m))
    diag = H.diagonal()
    H = H + sp.diags(DAMPING * diag + 1e-9 * max(float(diag.max()), 1.0))
    rhs = -g[1:, :dof].ravel()
    x = spla.spsolve(H, rhs)
    delta = np.zeros((n, 7))
    delta[1:, :dof] = np.asarray(x).reshape(n - 1, dof)
    return delta
