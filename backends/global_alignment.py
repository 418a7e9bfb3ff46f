"""Sparse global alignment: refine keyframe Sim(3)/SE(3) poses by aligning keyframe pointmaps pairwise.

In the spirit of CUT3R's ``demo_ga.py`` (which aligns all pairs, O(N^2)), but only along the pose graph's
edges, short covisibility edges ``(i, i+2 .. i+1+skip_edges)`` and the keyframe pairs that see the same
surfaces again further apart in the stream (:func:`covisible_pairs`, at most ``max_partners`` per keyframe):
the cost is linear in the number of keyframes. For each pair and each direction, the source keyframe's
sampled points are paired with the destination's surface by sub-pixel projective association
(:mod:`backends.projective`). Residuals are point-to-plane distances weighted by both sides' normalised
confidences and a Huber kernel on the whitened residual. For metric keyframes the residual is whitened by
its predicted sensor noise (both points' depth noise, :class:`backends.config.DepthNoiseConfig`: axial ~ z^2
plus lateral ~ z) and the kernel width is ``depth_noise.huber`` sigmas, so a far, noisy point weighs less
than a near one; up-to-scale keyframes have no metric noise model and use the scale-free width
``huber * depth`` (kernel at 1). Each outer iteration re-associates and takes one damped Gauss-Newton step
on all poses jointly (left-multiplicative update ``P <- Exp(delta) P`` with GTSAM's Sim(3) exponential,
``delta = (omega, v, log s)``; the first keyframe is fixed; SE(3) mode keeps every scale at 1). A graph
edge whose keyframes share too few correspondences contributes "virtual" point pairs built from its
relative pose in the input solution instead, so the problem stays connected; every graph edge also
contributes them with weight ``prior_weight``, which holds the directions that geometry leaves free
(sliding along a wall) at the pose-graph solution.

The normal equations are assembled per pose pair (7x7 blocks) and solved with a sparse factorisation
(scipy), so one step costs time linear in the number of edges (a dense Jacobian, residuals x 7N parameters,
would take e.g. ~13 GB in float64 for 200 keyframes).

Safeguard, a measure of trajectory accuracy that the alignment does not optimise directly: (1) keyframe
pairs that the alignment does *not* use are held out: short-range ``(i, i+2+skip_edges)`` and
``(i, i+3+skip_edges)``, and every ``holdout_every``-th covisible pair further apart (where loops close,
where long-range drift shows); their truncated point-to-plane error
(:func:`backends.projective.consistency_error`) must decrease in both sets; (2) the engine checks the loop
and segment-link measurements (no worse than the pose graph, or for an SE(3) graph within their noise
model) and that no odometry edge's original measurement is violated by more than ``max_odometry_residual``
sigmas while the edge's points agree no better. Otherwise the pose-graph solution is kept. With a Sim(3)
graph the keyframe scales are kept at the pose graph's (``solve_scale``): point-to-plane errors cannot tell
a keyframe's scale from its translation along the view, and on real data a free-scale alignment lowered
every point-consistency figure while the trajectory got worse (see ``docs/sim3_real_data.md``).

The result replaces the measurement of every edge that had enough real correspondences by the aligned
relative pose, so that the re-seeded pose graph reproduces the aligned poses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import gtsam
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.spatial import cKDTree

from backends.config import DepthNoiseConfig, GlobalAlignmentConfig
from backends.pose_graph import Edge
from backends.projective import PointView, associate, consistency_error, prepare_view, view_median_depth
from backends.sim3 import from_gtsam
from slam import geometry
from slam.types import Keyframe

MIN_CORRESPONDENCES = 30
DAMPING = 1e-4
#: held-out pairs need at least this many visible points (both directions) to count
MIN_HELDOUT_POINTS = 100
#: the Gauss-Newton iterations stop early once no pose moves by more than this (radians; fraction of depth)
CONVERGED_STEP = 1e-5
#: association gate (relative to depth) when looking for covisible pairs
CONSISTENCY_GATE = 0.1
#: source samples per keyframe (at most) of the covisibility pre-test: a pair whose visible fraction among
#: them is below half the threshold is rejected without the full test (from 500 samples a fraction is known
#: to ~2 %, so a pair that passes the full test is not lost)
COVISIBILITY_SAMPLES = 500


@dataclass
class AlignmentResult:
    """Outcome of :func:`align_keyframes`.

    Attributes:
        poses: keyframe id -> 4x4 Sim(3) ``T_wk`` after alignment (input poses for ids not aligned).
        edges: copies of the input edges, measurements replaced where the edge had real correspondences.
        stats: JSON-ready figures (costs, correspondences, held-out errors).
        improved: the consistency error of both held-out sets decreased: short-range pairs the alignment did
            not use, and held-out covisible pairs far apart in the stream (where the trajectory meets itself
            again; :func:`covisible_pairs`). A set with too few points to count does not block.
        edge_consistency: ``(a, b) -> (error before, error after)`` of every odometry edge's keyframe pair
            (:func:`backends.projective.consistency_error`; NaN without overlap): whether the points of an
            edge that the alignment moved away from its odometry measurement agree better or worse.
    """

    poses: dict[int, np.ndarray]
    edges: list[Edge]
    stats: dict = field(default_factory=dict)
    improved: bool = True
    edge_consistency: dict[tuple[int, int], tuple[float, float]] = field(default_factory=dict)


def _virtual(src: PointView, P_src: np.ndarray, P_dst: np.ndarray, T_dst_src: np.ndarray, huber: float,
             weight: float, noise: DepthNoiseConfig | None = None):
    """Point pairs that encode the measurement ``T_dst_src`` (used when an edge lacks real overlap).

    Returns (y_src, y_dst, weights, residual sigmas, Huber width in sigmas, normals = None), like the real
    terms of :func:`_normal_equations`."""
    x_src = src.grid.reshape(-1, 3)[src.sample[:: max(1, len(src.sample) // 200)]]
    if len(x_src) == 0:  # a keyframe without valid points (e.g. no valid depth): no pairs, no division by 0
        empty = np.zeros((0, 3))
        return empty, empty, np.zeros(0), np.zeros(0), 1.0, None
    y_src = geometry.transform_points(P_src, x_src)
    y_dst = geometry.transform_points(P_dst @ T_dst_src, x_src)
    scale = float(geometry.similarity_scale(P_src))
    w = np.full(len(x_src), weight * len(src.sample) / len(x_src))
    if src.sigma is not None and noise is not None:  # the same point seen twice: twice its noise variance
        sig = np.sqrt(2.0) * src.sigma.ravel()[src.sample[:: max(1, len(src.sample) // 200)]] * scale
        return y_src, y_dst, w, sig, noise.huber, None
    return y_src, y_dst, w, huber * np.abs(x_src[:, 2]) * scale, 1.0, None


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


def _exp_many(delta: np.ndarray) -> np.ndarray:
    """(N, 4, 4) Sim(3) group exponentials of (N, 7) tangent steps ``(omega, v, log s)`` as ``[[s R, t], [0, 1]]``.

    GTSAM's ``Similarity3.Expmap`` takes the same tangent order; its matrix ``[[R, t'], [0, 1/s]]`` is
    converted by :func:`backends.sim3.from_gtsam`.
    """
    return np.stack([from_gtsam(gtsam.Similarity3.Expmap(np.asarray(d, dtype=np.float64))) for d in delta]) \
        if len(delta) else np.zeros((0, 4, 4))


def alignment_pairs(ids: list[int], edges: list[Edge], skip_edges: int) -> list[tuple[int, int]]:
    """Sorted ``(a, b)`` pairs (a < b) aligned: graph edges among ``ids`` and ``(i, i+2..i+1+skip_edges)``."""
    idset = set(ids)
    pairs = {(min(e.a, e.b), max(e.a, e.b)) for e in edges if e.a in idset and e.b in idset and e.a != e.b}
    for i, k in enumerate(ids):
        for j in ids[i + 2: i + 2 + skip_edges]:
            pairs.add((k, j))
    return sorted(pairs)


def heldout_pairs(ids: list[int], used: set[tuple[int, int]], skip_edges: int) -> list[tuple[int, int]]:
    """Pairs ``(i, i+2+skip_edges)`` and ``(i, i+3+skip_edges)`` (in id order) that alignment does not use."""
    out = []
    for i, k in enumerate(ids):
        for j in ids[i + 2 + skip_edges: i + 4 + skip_edges]:
            if (k, j) not in used:
                out.append((k, j))
    return out


def covisible_pairs(views: dict[int, PointView], poses: dict[int, np.ndarray], ids: list[int],
                    exclude: set[tuple[int, int]], min_gap: int, min_visible: float,
                    max_partners: int = 0) -> list[tuple[int, int]]:
    """Covisible keyframe pairs ``(a, b)`` (a < b in id order) at least ``min_gap`` apart in id order and not in
    ``exclude``, sorted: keyframes that see the same surfaces again, e.g. where the trajectory meets itself
    (loops), which pairs of neighbours in the stream do not see.

    Covisible: the cameras are within one median scene depth of each other, and at ``poses`` at least
    ``min_visible`` of a's samples project onto valid cells of b (a pre-test on at most
    :data:`COVISIBILITY_SAMPLES` of them rejects clear cases first). With ``max_partners > 0`` each keyframe keeps
    at most that many partners, those farthest apart in the stream first: they carry the long-range
    information (drift) that the chain of near neighbours does not. This bounds the pair count (linear in
    the keyframes) when the camera stays in one place for a long time.
    """
    coarse = {k: views[k].with_sample(views[k].sample[:: max(1, -(-len(views[k].sample) // COVISIBILITY_SAMPLES))])
              for k in ids}
    centre = np.array([poses[k][:3, 3] for k in ids]).reshape(-1, 3)
    depth = np.array([view_median_depth(views[k]) * float(geometry.similarity_scale(poses[k])) for k in ids])
    # candidate pairs within the largest scene depth (a k-d tree: memory grows with neighbours, not N^2)
    near = cKDTree(centre).query_pairs(float(depth.max(initial=0.0)), output_type="ndarray") if len(ids) else []
    found: list[tuple[float, int, int]] = []
    for i, j in sorted(map(tuple, near)):
        a, b = ids[i], ids[j]
        if j - i < min_gap or (a, b) in exclude or \
                np.linalg.norm(centre[i] - centre[j]) > max(depth[i], depth[j]):
            continue
        c = associate(coarse[a], coarse[b], poses[a], poses[b], CONSISTENCY_GATE)
        if c.n_visible < 0.5 * min_visible * c.n_samples:
            continue
        c = associate(views[a], views[b], poses[a], poses[b], CONSISTENCY_GATE)
        visible = c.n_visible / max(c.n_samples, 1)
        if visible >= min_visible:
            found.append((visible, a, b))
    if max_partners <= 0:
        return sorted((a, b) for _, a, b in found)
    partners: dict[int, int] = {}
    kept = []
    for _, a, b in sorted(found, key=lambda x: (x[1] - x[2], x[1])):  # farthest apart in the stream first
        if partners.get(a, 0) < max_partners and partners.get(b, 0) < max_partners:
            partners[a] = partners.get(a, 0) + 1
            partners[b] = partners.get(b, 0) + 1
            kept.append((a, b))
    return sorted(kept)


def split_heldout(pairs: list[tuple[int, int]], every: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(used, held out): every ``every``-th pair of the sorted ``pairs`` is held out (none when ``every`` < 2)."""
    if every < 2:
        return list(pairs), []
    return ([p for i, p in enumerate(pairs) if i % every != every - 1],
            [p for i, p in enumerate(pairs) if i % every == every - 1])


def align_keyframes(keyframes: dict[int, Keyframe], poses: dict[int, np.ndarray], edges: list[Edge],
                    cfg: GlobalAlignmentConfig, min_confidence: float, use_sim3: bool) -> AlignmentResult:
    """Align keyframe pointmaps along ``edges`` (+ covisibility edges) starting from ``poses`` (4x4 ``T_wk``).

    Returned edges are copies with refined measurements where the edge had at least
    ``MIN_CORRESPONDENCES`` real correspondences in the last iteration; the original measurement is kept in
    ``info['measured']``.
    """
    ids = sorted(k for k in keyframes if k in poses)
    if len(ids) < 2:
        return AlignmentResult(dict(poses), list(edges), {"pairs": 0})
    views = {k: prepare_view(keyframes[k], cfg.max_points, min_confidence, cfg.depth_noise) for k in ids}
    P = {k: np.asarray(poses[k], dtype=np.float64).copy() for k in ids}
    # each graph edge's relative pose in the input solution (which already fuses odometry and loops)
    measured: dict[tuple[int, int], np.ndarray] = {}
    for e in edges:
        if e.a in P and e.b in P and e.a != e.b:
            measured.setdefault((e.a, e.b), geometry.relative_pose(P[e.a], P[e.b]))
    pairs = alignment_pairs(ids, edges, cfg.skip_edges)
    heldout = heldout_pairs(ids, set(pairs), cfg.skip_edges)
    covisible = covisible_pairs(views, P, ids, set(pairs) | set(heldout), 4 + cfg.skip_edges, cfg.min_covisibility,
                                cfg.max_partners)
    if cfg.covisible:  # align most covisible pairs, hold the rest out for the check
        used, far = split_heldout(covisible, cfg.holdout_every)
        pairs = sorted(set(pairs) | set(used))
    else:
        far = covisible
    stats: dict = {"pairs": len(pairs), "iterations": cfg.iterations}
    real_count = _optimise(views, P, ids, pairs, measured, cfg, use_sim3, stats)
    improved = _check_heldout(views, poses, P, heldout, cfg.huber, stats)
    far_improved = _check_heldout(views, poses, P, far, cfg.huber, stats, "far")
    out_edges = []
    for e in edges:
        key = (min(e.a, e.b), max(e.a, e.b))
        if real_count.get(key, 0) >= MIN_CORRESPONDENCES and e.a in P and e.b in P:
            info = {**e.info, "aligned": True, "measured": e.info.get("measured", e.T_ab)}
            e = dataclasses.replace(e, T_ab=geometry.relative_pose(P[e.a], P[e.b]), info=info)
        out_edges.append(e)
    new_poses = dict(poses)
    new_poses.update(P)
    edge_consistency = {}
    for e in edges:
        if e.kind == "odometry" and e.a in P and e.b in P:
            edge_consistency[(e.a, e.b)] = (consistency_error(views, poses, [(e.a, e.b)], cfg.huber)[0],
                                            consistency_error(views, P, [(e.a, e.b)], cfg.huber)[0])
    return AlignmentResult(new_poses, out_edges, stats, improved and far_improved, edge_consistency)


def align_pair(kf_a: Keyframe, kf_b: Keyframe, T_ab: np.ndarray, cfg: GlobalAlignmentConfig,
               min_confidence: float, use_sim3: bool) -> tuple[np.ndarray, dict]:
    """Refine ``T_ab`` (4x4 Sim(3), pose of b in a's camera) by aligning the two keyframes' pointmaps.

    The same point-to-plane problem as :func:`align_keyframes` on one pair; the input ``T_ab`` enters as
    virtual point pairs with weight ``cfg.prior_weight``, which holds the directions the geometry leaves
    free (a view of planes) at the hypothesis. Returns the refined ``T_ab`` and stats
    (``final_correspondences`` is 0 when the views found no correspondences; ``observability`` is
    :func:`observability` of the data alone at the result).
    """
    views = {0: prepare_view(kf_a, cfg.max_points, min_confidence, cfg.depth_noise),
             1: prepare_view(kf_b, cfg.max_points, min_confidence, cfg.depth_noise)}
    T0 = np.asarray(T_ab, dtype=np.float64).copy()
    P = {0: np.eye(4), 1: T0.copy()}
    stats: dict = {}
    _optimise(views, P, [0, 1], [(0, 1)], {(0, 1): T0}, cfg, use_sim3, stats)
    blocks = _normal_equations(views, P, {0: 0, 1: 1}, [(0, 1)], {}, cfg)[0]
    depth = view_median_depth(views[0]) or 1.0
    stats["observability"] = observability(blocks[(1, 1)], depth, 6) if (1, 1) in blocks else 0.0
    return P[1], stats


def _optimise(views: dict[int, PointView], P: dict[int, np.ndarray], ids: list[int], pairs: list[tuple[int, int]],
              measured: dict[tuple[int, int], np.ndarray], cfg: GlobalAlignmentConfig, use_sim3: bool,
              stats: dict) -> dict[tuple[int, int], int]:
    """Gauss-Newton iterations on the poses ``P`` (updated in place; ``ids[0]`` fixed).

    Returns the real correspondences per pair in the last iteration; costs go into ``stats``.
    """
    col = {k: i for i, k in enumerate(ids)}
    dof = 7 if use_sim3 else 6
    depths = [d for d in (view_median_depth(views[k]) for k in ids) if d > 0]
    scene_depth = float(np.median(depths)) if depths else 1.0
    real_count: dict[tuple[int, int], int] = {}
    converged = False
    for it in range(cfg.iterations + 1):
        blocks, g, cost, total, real_count = _normal_equations(views, P, col, pairs, measured, cfg)
        if it == 0:
            stats["initial_cost"] = round(cost / max(total, 1), 6)
            stats["initial_correspondences"] = total
        if it == cfg.iterations or total == 0 or converged:
            stats["final_cost"] = round(cost / max(total, 1), 6)
            stats["final_correspondences"] = total
            break
        delta = _solve(blocks, g, len(ids), dof)
        step = _exp_many(delta)
        for k in ids:
            P[k] = step[col[k]] @ P[k]
        stats["iterations_run"] = it + 1
        converged = _converged(delta, scene_depth)  # the next pass re-associates and records the final cost
    return real_count


def _converged(delta: np.ndarray, depth: float) -> bool:
    """True when no pose moved by more than :data:`CONVERGED_STEP` (radians, log scale, and translation as a
    fraction of ``depth``, the keyframes' median scene depth)."""
    return bool(np.abs(delta[:, :3]).max(initial=0.0) < CONVERGED_STEP
                and np.abs(delta[:, 3:6]).max(initial=0.0) < CONVERGED_STEP * depth
                and np.abs(delta[:, 6]).max(initial=0.0) < CONVERGED_STEP)


def _normal_equations(views: dict[int, PointView], P: dict[int, np.ndarray], col: dict[int, int],
                      pairs: list[tuple[int, int]], measured: dict[tuple[int, int], np.ndarray],
                      cfg: GlobalAlignmentConfig):
    """Associate every pair at ``P`` and accumulate the Gauss-Newton system.

    Returns (7x7 Hessian blocks keyed by column pairs, (n, 7) gradient, robust cost, residual count,
    real correspondences per pair).
    """
    blocks: dict[tuple[int, int], np.ndarray] = {}
    g = np.zeros((len(col), 7))
    cost, total = 0.0, 0
    real_count: dict[tuple[int, int], int] = {}
    for a, b in pairs:
        terms = []
        for s, d in ((a, b), (b, a)):
            c = associate(views[s], views[d], P[s], P[d], cfg.max_distance)
            if c.var is not None:  # metric: residual whitened by the sensor noise of both points
                terms.append((s, d, c.y_src, c.y_dst, c.weight, np.sqrt(c.var), cfg.depth_noise.huber, c.normal))
            else:
                terms.append((s, d, c.y_src, c.y_dst, c.weight, cfg.huber * c.depth, 1.0, c.normal))
        n_real = sum(len(t[4]) for t in terms)
        real_count[(a, b)] = n_real
        # the graph's measurement of this edge as virtual point pairs: a weak prior that pins directions
        # the geometry leaves free, and the whole constraint when the edge lacks real overlap
        prior_w = cfg.prior_weight if n_real >= MIN_CORRESPONDENCES else 1.0
        if n_real < MIN_CORRESPONDENCES:
            terms = []
        if (a, b) in measured:
            terms.append((b, a, *_virtual(views[b], P[b], P[a], measured[(a, b)], cfg.huber, prior_w, cfg.depth_noise)))
        elif (b, a) in measured:
            terms.append((a, b, *_virtual(views[a], P[a], P[b], measured[(b, a)], cfg.huber, prior_w, cfg.depth_noise)))
        for s, d, y_s, y_d, w, sig, k, nrm in terms:
            if len(w) == 0:
                continue
            r = y_d - y_s
            Jd, Js = _jacobian(y_d), -_jacobian(y_s)
            if nrm is not None:  # point-to-plane along the destination normal
                r = np.einsum("mi,mi->m", nrm, r)[:, None]
                Jd = np.einsum("mi,mij->mj", nrm, Jd)[:, None, :]
                Js = np.einsum("mi,mij->mj", nrm, Js)[:, None, :]
            rn = np.linalg.norm(r, axis=1) / sig
            hub = np.minimum(1.0, k / np.maximum(rn, 1e-12))
            W = w * hub / sig**2
            cost += float(np.sum(w * np.where(rn <= k, 0.5 * rn**2, k * rn - 0.5 * k * k)))
            total += len(w)
            # one (rows, 14) Jacobian over both poses: the 14x14 product holds all four 7x7 blocks
            A = np.concatenate([Jd, Js], axis=2).reshape(-1, 14)
            Wr = np.repeat(W, r.shape[1])
            WA = A * Wr[:, None]
            H = WA.T @ A
            grad = WA.T @ r.reshape(-1)
            for bi, i in ((0, d), (1, s)):
                g[col[i]] += grad[7 * bi: 7 * bi + 7]
                for bj, j in ((0, d), (1, s)):
                    key = (col[i], col[j])
                    blocks[key] = blocks.get(key, 0.0) + H[7 * bi: 7 * bi + 7, 7 * bj: 7 * bj + 7]
    return blocks, g, cost, total, real_count


def observability(H: np.ndarray, depth: float, dof: int) -> float:
    """How well point data pins every direction of one pose: smallest / largest eigenvalue of its ``dof``x``dof``
    Hessian block ``H`` after expressing translation (and log-scale) in units of ``depth`` (so that every
    direction moves points by comparable amounts). Near 0: some direction (e.g. sliding along a wall) is
    left free by the geometry."""
    S = np.diag([1.0, 1.0, 1.0, depth, depth, depth, 1.0])[:dof, :dof]
    ev = np.linalg.eigvalsh(S @ H[:dof, :dof] @ S)
    return float(max(ev[0], 0.0) / ev[-1]) if ev[-1] > 0 else 0.0


def _check_heldout(views: dict[int, PointView], before: dict[int, np.ndarray], after: dict[int, np.ndarray],
                   heldout: list[tuple[int, int]], scale: float, stats: dict, name: str = "heldout") -> bool:
    """Held-out consistency before/after (into ``stats`` as ``<name>_...``); True when it decreased or
    nothing is held out."""
    err0, count = consistency_error(views, before, heldout, scale)
    stats[f"{name}_pairs"] = len(heldout)
    stats[f"{name}_points"] = count
    if count < MIN_HELDOUT_POINTS:
        return True
    err1, _ = consistency_error(views, after, heldout, scale)
    stats[f"{name}_error_before"] = round(err0, 6)
    stats[f"{name}_error_after"] = round(err1, 6)
    return bool(err1 < err0)


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
