"""Loop closure: retrieval by descriptor similarity, verification by pose hypotheses + a geometric check.

Retrieval: cosine similarity between the new keyframe's global descriptor and those of all keyframes older
than the recent window (one matrix-vector product over a preallocated, L2-normalised descriptor matrix); the
top-k above ``min_score`` are candidates. Keyframes without a frontend descriptor get a fallback one
computed here from their colours (a normalised grey thumbnail).

Verification of a candidate (old keyframe ``a``, new keyframe ``b``) tries up to two hypotheses of
``T_ab`` (pose of b in a's camera frame), cheapest first:
  1. the pose graph's current relative pose (``use_graph_prior``): right when the drift since ``a`` is
     small, costs only the geometric check (milliseconds); accepted only when the pointmaps constrain every
     direction of the pose (``min_observability``), since along a free direction the refinement can only
     return the prior;
  2. ``frontend.pair(a.frame, b.frame)`` (``pair_estimate``): a fresh estimate from the two frames, which
     survives any drift but costs a frontend call; asked for at most ``max_pair_estimates`` candidates per
     new keyframe, best-scored first, and only when hypothesis 1 failed. Up-to-scale frontends: the pair's
     unit is converted to each keyframe's stream unit by a robust per-pixel fit of the keyframe's stored
     pointmap against the pair's pointmap of the same view (:func:`relative_scale`), so the hypothesis is a
     Sim(3) whose scale is the two keyframes' unit ratio.
Geometric check of a hypothesis on the stored (downsampled) pointmaps: the projective point-to-plane
alignment of :func:`backends.global_alignment.align_pair` refines it, coarse to fine (Sim(3) for
up-to-scale, SE(3) for metric frontends); a hypothesis that refinement has to move by more than
``max_correction`` (translation in units of scene depth, rotation, and for Sim(3) log scale) is rejected.
Up-to-scale keyframes: the observability test applies to the rigid part (scale and translation along the
view are nearly interchangeable for one depth map, so the 7-dof ratio would reject most views); the scale
is bounded by the correction test. The inlier ratio is the fraction of b's points that land on a's
surface (a valid cell of a's grid) and lie within ``inlier_distance`` (relative to depth) of it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from slam import geometry
from backends.config import DepthNoiseConfig, GlobalAlignmentConfig, KeyframeConfig, LoopClosureConfig
from backends.global_alignment import align_pair
from slam.pointmaps import median_depth
from backends.projective import associate, prepare_view
from slam.types import Keyframe, PairEstimate, PairEstimator

MAX_VERIFY_POINTS = 3000
MIN_VISIBLE_FRACTION = 0.2
#: coarse-to-fine point-to-plane refinement of a loop hypothesis: a wide association gate first (reach), then
#: a tight one (accuracy); a weak prior only pins the directions the geometry leaves free. Residual widths stay
#: relative to depth here (no sensor noise model): whitening by the z^2 noise model concentrates the weight on
#: the nearest points, and the observability / correction checks that follow were made for these widths (on
#: 7-Scenes it accepted 9 instead of 13 loops and worsened ATE; docs/depth_noise.md)
_REFINE = (GlobalAlignmentConfig(iterations=5, max_points=MAX_VERIFY_POINTS, prior_weight=0.01, max_distance=0.15,
                                 huber=0.03, depth_noise=DepthNoiseConfig(enabled=False)),
           GlobalAlignmentConfig(iterations=6, max_points=MAX_VERIFY_POINTS, prior_weight=0.01, max_distance=0.03,
                                 huber=0.01, depth_noise=DepthNoiseConfig(enabled=False)))


@dataclass
class Verification:
    """Outcome of verifying one pair of keyframes.

    Attributes:
        accepted: passed every check.
        reason: why it was rejected, or 'ok'.
        T_ab: 4x4 Sim(3) pose of b in a's camera frame, in the keyframes' stream units.
        confidence: the pair estimate's confidence.
        inlier_ratio: geometric inlier ratio (0 if not reached).
        info: diagnostics.
    """

    accepted: bool
    reason: str
    T_ab: np.ndarray = field(default_factory=lambda: np.eye(4))
    confidence: float = 0.0
    inlier_ratio: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> float:
        return self.inlier_ratio * self.confidence


def fallback_descriptor(kf: Keyframe) -> np.ndarray:
    """A (768,) L2-normalised descriptor from the keyframe's colours: zero-mean grey 32x24 thumbnail."""
    grey = kf.colors.astype(np.float32).mean(-1)
    thumb = cv2.resize(grey, (32, 24), interpolation=cv2.INTER_AREA).ravel()
    thumb -= thumb.mean()
    return (thumb / (np.linalg.norm(thumb) + 1e-9)).astype(np.float32)


def confident_points(kf: Keyframe, min_confidence: float, limit: int = MAX_VERIFY_POINTS) -> np.ndarray:
    """(N, 3) float64 confident points of a keyframe (camera frame), at most ``limit`` (most confident)."""
    pts = kf.points.reshape(-1, 3).astype(np.float64)
    conf = kf.confidence.ravel()
    ok = (conf > min_confidence) & np.isfinite(pts).all(1) & (pts[:, 2] > 0)
    pts, conf = pts[ok], conf[ok]
    if len(pts) > limit:
        keep = np.sort(np.argsort(-conf, kind="stable")[:limit])
        pts = pts[keep]
    return pts


#: fewer pixels valid in both pointmaps than this: the scale falls back to the ratio of median depths
MIN_SCALE_PIXELS = 50


def relative_scale(points: np.ndarray, confidence: np.ndarray, other: np.ndarray, other_conf: np.ndarray,
                   min_confidence: float = 0.0) -> tuple[float, float]:
    """Robust factor ``f`` with ``points ~ f * other``: two camera-frame pointmaps of one view in two units.

    ``points`` (m, n, 3) is compared with ``other`` (H, W, 3, the same view at any resolution, sampled at the
    nearest grid positions) pixel by pixel: ``f`` is the median depth ratio over pixels confident and in
    front in both, and the spread is the median absolute deviation of the log ratios (0 = exact). With fewer
    than :data:`MIN_SCALE_PIXELS` such pixels the ratio of the two median depths is returned (spread nan).
    """
    m, n = points.shape[:2]
    H, W = other.shape[:2]
    rows = np.minimum((np.arange(m) * H / m).astype(int), H - 1)
    cols = np.minimum((np.arange(n) * W / n).astype(int), W - 1)
    z = points[..., 2].astype(np.float64)
    zo = other[rows][:, cols, 2].astype(np.float64)
    ok = (confidence > min_confidence) & (other_conf[rows][:, cols] > 0) & (z > 0) & (zo > 0)
    ok &= np.isfinite(z) & np.isfinite(zo)
    if ok.sum() < MIN_SCALE_PIXELS:
        return median_depth(points, confidence, min_confidence) / median_depth(other, other_conf), float("nan")
    log_ratio = np.log(z[ok] / zo[ok])
    med = float(np.median(log_ratio))
    return float(np.exp(med)), float(np.median(np.abs(log_ratio - med)))


def _to_stream_units(kf_a: Keyframe, kf_b: Keyframe, pair: PairEstimate, T: np.ndarray,
                     min_conf: float, info: dict | None = None) -> np.ndarray:
    """Convert a pair-unit Sim(3) ``T_ab`` into the keyframes' stream units (up-to-scale frontends).

    Each keyframe's unit relative to the pair's comes from :func:`relative_scale` of its stored pointmap
    against the pair's pointmap of the same view (b's brought back into b's camera by ``T``).
    """
    if pair.points_a is None or pair.points_b is None:
        return T
    ca = pair.conf_a if pair.conf_a is not None else np.ones(pair.points_a.shape[:2], np.float32)
    cb = pair.conf_b if pair.conf_b is not None else np.ones(pair.points_b.shape[:2], np.float32)
    pts_b_in_b = geometry.transform_points(geometry.inverse_pose(T), pair.points_b.reshape(-1, 3).astype(np.float64))
    pts_b_in_b = pts_b_in_b.reshape(pair.points_b.shape)
    sig_a, spread_a = relative_scale(kf_a.points, kf_a.confidence, pair.points_a, ca, min_conf)
    sig_b, spread_b = relative_scale(kf_b.points, kf_b.confidence, pts_b_in_b, cb, min_conf)
    if info is not None:
        info.update(unit_a=round(sig_a, 5), unit_b=round(sig_b, 5), unit_spread=round(max(spread_a, spread_b), 5))
    return np.diag([sig_a] * 3 + [1.0]) @ T @ np.diag([1.0 / sig_b] * 3 + [1.0])


def pair_hypothesis(frontend: PairEstimator, kf_a: Keyframe, kf_b: Keyframe, cfg: LoopClosureConfig, kf_cfg: KeyframeConfig,
                    use_sim3: bool) -> tuple[np.ndarray | None, float, str]:
    """``T_ab`` from ``frontend.pair`` in the keyframes' stream units: (T or None, confidence, why not)."""
    if kf_a.frame is None or kf_b.frame is None:
        return None, 0.0, "frame not stored (backend.keyframe.keep_frame is false)"
    try:
        pair = frontend.pair(kf_a.frame, kf_b.frame)
    except Exception as exc:  # noqa: BLE001 - a failing pair estimate only rejects the candidate
        return None, 0.0, f"pair estimate failed: {exc!r}"
    conf = float(pair.confidence)
    if not np.isfinite(pair.T_ab).all():
        return None, conf, "pair estimate is not finite"
    if conf < cfg.min_pair_confidence:
        return None, conf, f"pair confidence {conf:.3f} < {cfg.min_pair_confidence}"
    T = np.asarray(pair.T_ab, dtype=np.float64).copy()
    if not pair.sim3 and pair.scale != 1.0:
        T[:3, :3] *= float(pair.scale)
    if not kf_a.metric or not kf_b.metric:
        T = _to_stream_units(kf_a, kf_b, pair, T, kf_cfg.min_confidence)
    return (T if use_sim3 else geometry.rigid(T)), conf, "ok"


def verify_pair(frontend: PairEstimator, kf_a: Keyframe, kf_b: Keyframe, cfg: LoopClosureConfig,
                kf_cfg: KeyframeConfig, use_sim3: bool) -> Verification:
    """Verify with a pair estimate that keyframes ``a`` (old) and ``b`` (new) see the same place."""
    T, conf, why = pair_hypothesis(frontend, kf_a, kf_b, cfg, kf_cfg, use_sim3)
    if T is None:
        return Verification(False, why, confidence=conf, info={"hypothesis": "pair"})
    res = check_geometry(kf_a, kf_b, T, cfg, kf_cfg.min_confidence, use_sim3, confidence=conf, frontend=frontend)
    res.info["hypothesis"] = "pair"
    return res


def check_geometry(kf_a: Keyframe, kf_b: Keyframe, T_ab: np.ndarray, cfg: LoopClosureConfig,
                   min_confidence: float, use_sim3: bool, confidence: float = 1.0,
                   frontend: PairEstimator | None = None) -> Verification:
    """Geometric check (with refinement when ``cfg.refine``) of the hypothesis ``T_ab`` on the pointmaps.

    With ``cfg.dense_refine`` and a ``frontend`` that offers :meth:`~frontends.base.Frontend.refine_pair`,
    the point-refined hypothesis is refined once more by the frontend's dense alignment of the two stored
    frames (metric keyframes only) before the inlier check.
    """
    src = confident_points(kf_b, min_confidence)
    dst = confident_points(kf_a, min_confidence)
    if len(src) < 20 or len(dst) < 20:
        return Verification(False, "too few confident points", T_ab, confidence)
    depth = float(np.median(dst[:, 2]))
    T = T_ab
    info: dict[str, Any] = {}
    if cfg.refine:
        for stage in _REFINE:
            T, stats = align_pair(kf_a, kf_b, T, stage, min_confidence, use_sim3)
        info["observability"] = round(stats["observability"], 6)
        corr = geometry.relative_pose(T_ab, T)
        move_t = float(np.linalg.norm(corr[:3, 3])) / depth
        move_r = geometry.rotation_angle(geometry.rotation_of(corr))
        move_s = abs(float(np.log(geometry.similarity_scale(corr))))  # relative change of b's depths
        info.update(correction=round(move_t, 5), correction_deg=round(float(np.degrees(move_r)), 4),
                    correction_log_scale=round(move_s, 5))
        if max(move_t, move_r, move_s) > cfg.max_correction:
            return Verification(False, f"refinement moved the hypothesis too much ({move_t:.3f} depth, "
                                f"{np.degrees(move_r):.1f} deg, log scale {move_s:.3f})", T_ab, confidence, info=info)
        if cfg.dense_refine and frontend is not None:
            T = _dense_refine(frontend, kf_a, kf_b, T, depth, cfg.max_correction, info)
    view_a = prepare_view(kf_a, MAX_VERIFY_POINTS, min_confidence)
    view_b = prepare_view(kf_b, MAX_VERIFY_POINTS, min_confidence)
    c = associate(view_b, view_a, T, np.eye(4), cfg.inlier_distance)
    vis_frac = c.n_visible / max(c.n_samples, 1)
    info["visible_fraction"] = round(vis_frac, 4)
    if vis_frac < MIN_VISIBLE_FRACTION:
        return Verification(False, f"views do not overlap (visible fraction {vis_frac:.2f})", T, confidence,
                            info=info)
    ratio = len(c) / c.n_visible
    if ratio < cfg.min_inlier_ratio:
        return Verification(False, f"inlier ratio {ratio:.3f} < {cfg.min_inlier_ratio}", T, confidence, ratio,
                            info)
    return Verification(True, "ok", T, confidence, ratio, info)


def _dense_refine(frontend: PairEstimator, kf_a: Keyframe, kf_b: Keyframe, T_ab: np.ndarray, depth: float,
                  max_correction: float, info: dict[str, Any]) -> np.ndarray:
    """``T_ab`` refined by ``frontend.refine_pair`` on the stored frames, or unchanged when the frontend has
    no such refinement, a keyframe is not metric or lacks its frame, the call fails, or the result moves
    the hypothesis by more than ``max_correction`` (relative to ``depth``, or radians). ``info['dense']``
    says which."""
    refine = getattr(frontend, "refine_pair", None)
    if refine is None or not (kf_a.metric and kf_b.metric) or kf_a.frame is None or kf_b.frame is None:
        info["dense"] = "not applicable"
        return T_ab
    try:
        est = refine(kf_a.frame, kf_b.frame, geometry.rigid(T_ab))
    except Exception as exc:  # noqa: BLE001 - a failing refinement keeps the point-refined hypothesis
        info["dense"] = f"failed: {exc!r}"
        return T_ab
    if est is None or not np.isfinite(est.T_ab).all():
        info["dense"] = "none"
        return T_ab
    corr = geometry.relative_pose(geometry.rigid(T_ab), np.asarray(est.T_ab, dtype=np.float64))
    move_t = float(np.linalg.norm(corr[:3, 3])) / depth
    move_r = geometry.rotation_angle(geometry.rotation_of(corr))
    info.update(dense_correction=round(move_t, 5), dense_correction_deg=round(float(np.degrees(move_r)), 4))
    if max(move_t, move_r) > max_correction:
        info["dense"] = "rejected (moved too far)"
        return T_ab
    info["dense"] = "used"
    return np.asarray(est.T_ab, dtype=np.float64)


class LoopCloser:
    """Keeps the keyframe descriptors; retrieves and verifies loop candidates."""

    def __init__(self, cfg: LoopClosureConfig, kf_cfg: KeyframeConfig, frontend: PairEstimator, use_sim3: bool):
        self.cfg = cfg
        self.kf_cfg = kf_cfg
        self.frontend = frontend
        self.use_sim3 = use_sim3
        self._desc: np.ndarray | None = None  # (capacity, D) rows in keyframe-id order
        self._ids: list[int] = []

    def descriptor(self, kf: Keyframe) -> np.ndarray:
        d = kf.descriptor if kf.descriptor is not None else fallback_descriptor(kf)
        d = np.asarray(d, dtype=np.float32).ravel()
        return d / (np.linalg.norm(d) + 1e-12)

    def add(self, kf: Keyframe) -> None:
        """Register a keyframe's descriptor (keyframes must be added in id order)."""
        d = self.descriptor(kf)
        n = len(self._ids)
        if self._desc is None:
            self._desc = np.zeros((64, d.size), np.float32)
        if d.size != self._desc.shape[1]:
            raise ValueError(f"descriptor size changed from {self._desc.shape[1]} to {d.size}")
        if n == len(self._desc):
            self._desc = np.concatenate([self._desc, np.zeros_like(self._desc)])
        self._desc[n] = d
        self._ids.append(kf.id)

    def retrieve(self, kf: Keyframe, max_id: int) -> list[tuple[int, float]]:
        """Top-k (keyframe id, cosine score) among keyframes with id < ``max_id`` and score >= min_score."""
        n = bisect.bisect_left(self._ids, max_id)
        if n <= 0:
            return []
        scores = self._desc[:n] @ self.descriptor(kf)
        k = min(self.cfg.top_k, n)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self._ids[i], float(scores[i])) for i in top if scores[i] >= self.cfg.min_score]

    def verify(self, kf_a: Keyframe, kf_b: Keyframe, T_prior: np.ndarray | None = None,
               allow_pair: bool = True) -> Verification:
        """Verify candidate ``a`` (old) for the new keyframe ``b``: the graph's ``T_prior`` first (when given,
        ``use_graph_prior`` and ``refine``), then a pair estimate (when ``allow_pair`` and ``pair_estimate``).

        ``info['hypothesis']`` names the hypothesis that decided; ``info['pair_called']`` is True when
        ``frontend.pair`` was asked.
        """
        res = None
        if T_prior is not None and self.cfg.use_graph_prior and self.cfg.refine:  # unrefined, it restates the graph
            T = T_prior if self.use_sim3 else geometry.rigid(T_prior)
            res = check_geometry(kf_a, kf_b, T, self.cfg, self.kf_cfg.min_confidence, self.use_sim3,
                                 frontend=self.frontend)
            res.info["hypothesis"] = "graph"
            res.confidence = res.inlier_ratio
            obs = res.info.get("observability", 1.0)
            if res.accepted and obs < self.cfg.min_observability:
                res.accepted = False
                res.reason = f"geometry leaves a direction free (observability {obs:.4f} < {self.cfg.min_observability})"
            if res.accepted:
                return res
        if allow_pair and self.cfg.pair_estimate and self.frontend is not None:
            pair_res = verify_pair(self.frontend, kf_a, kf_b, self.cfg, self.kf_cfg, self.use_sim3)
            pair_res.info["pair_called"] = True
            if res is not None and not pair_res.accepted:
                pair_res.reason = f"graph prior: {res.reason}; pair estimate: {pair_res.reason}"
            return pair_res
        if res is None:
            return Verification(False, "no hypothesis (use_graph_prior and pair_estimate are off)")
        return res
