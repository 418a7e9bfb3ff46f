"""Loop closure: retrieval by descriptor similarity, verification by a pair estimate + geometric check.

Retrieval: cosine similarity between the new keyframe's global descriptor and those of all keyframes older
than the recent window; the top-k above ``min_score`` are candidates. Keyframes without a frontend
descriptor get a fallback one computed here from their colours (a normalised grey thumbnail).

Verification of a candidate (old keyframe ``a``, new keyframe ``b``):
  1. ``frontend.pair(a.frame, b.frame)`` gives ``T_ab`` (pose of b in a's camera frame) and a confidence.
  2. Up-to-scale frontends: the pair's units are converted to each keyframe's stream units from the ratio of
     median depths of the pair's pointmaps and the keyframes' pointmaps.
  3. Geometric check: b's confident points are mapped into a's camera with ``T_ab``, optionally refined by a
     robust ICP (Sim(3) for up-to-scale, SE(3) for metric frontends) against a's points; the fraction of
     b's points visible in a that have an a-point within ``inlier_distance`` (relative to depth) is the
     inlier ratio. A pair estimate that ICP has to move by more than ``max_correction`` is rejected.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from scipy.spatial import cKDTree

from backends import sim3
from backends.alignment import robust_icp
from backends.config import KeyframeConfig, LoopClosureConfig
from backends.keyframer import median_depth
from slam.types import Keyframe

MAX_VERIFY_POINTS = 3000
MIN_VISIBLE_FRACTION = 0.2


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


def _to_stream_units(kf_a: Keyframe, kf_b: Keyframe, pair: Any, T: np.ndarray, min_conf: float) -> np.ndarray:
    """Convert a pair-unit Sim(3) ``T_ab`` into the keyframes' stream units (up-to-scale frontends)."""
    if pair.points_a is None or pair.points_b is None:
        return T
    ca = pair.conf_a if pair.conf_a is not None else np.ones(pair.points_a.shape[:2], np.float32)
    cb = pair.conf_b if pair.conf_b is not None else np.ones(pair.points_b.shape[:2], np.float32)
    za = median_depth(pair.points_a, ca)
    pts_b_in_b = sim3.transform_points(sim3.inverse(T), pair.points_b.reshape(-1, 3).astype(np.float64))
    zb = median_depth(pts_b_in_b.reshape(pair.points_b.shape), cb)
    sig_a = median_depth(kf_a.points, kf_a.confidence, min_conf) / za
    sig_b = median_depth(kf_b.points, kf_b.confidence, min_conf) / zb
    return np.diag([sig_a] * 3 + [1.0]) @ T @ np.diag([1.0 / sig_b] * 3 + [1.0])


def verify_pair(frontend: Any, kf_a: Keyframe, kf_b: Keyframe, cfg: LoopClosureConfig,
                kf_cfg: KeyframeConfig, use_sim3: bool) -> Verification:
    """Verify that keyframes ``a`` (old) and ``b`` (new) see the same place; estimate ``T_ab``."""
    if kf_a.frame is None or kf_b.frame is None:
        return Verification(False, "frame not stored (backend.keyframe.keep_frame is false)")
    try:
        pair = frontend.pair(kf_a.frame, kf_b.frame)
    except Exception as exc:  # noqa: BLE001 - a failing pair estimate only rejects the candidate
        return Verification(False, f"pair estimate failed: {exc!r}")
    conf = float(pair.confidence)
    if not np.isfinite(pair.T_ab).all():
        return Verification(False, "pair estimate is not finite", confidence=conf)
    if conf < cfg.min_pair_confidence:
        return Verification(False, f"pair confidence {conf:.3f} < {cfg.min_pair_confidence}", confidence=conf)
    T = np.asarray(pair.T_ab, dtype=np.float64).copy()
    if not pair.sim3 and pair.scale != 1.0:
        T[:3, :3] *= float(pair.scale)
    if not kf_a.metric or not kf_b.metric:
        T = _to_stream_units(kf_a, kf_b, pair, T, kf_cfg.min_confidence)
    if not use_sim3:
        T = sim3.rigid(T)
    return check_geometry(kf_a, kf_b, T, cfg, kf_cfg.min_confidence, use_sim3, confidence=conf)


def check_geometry(kf_a: Keyframe, kf_b: Keyframe, T_ab: np.ndarray, cfg: LoopClosureConfig,
                   min_confidence: float, use_sim3: bool, confidence: float = 1.0) -> Verification:
    """Geometric check (and optional ICP refinement) of ``T_ab`` with the keyframes' pointmaps."""
    src = confident_points(kf_b, min_confidence)
    dst = confident_points(kf_a, min_confidence)
    if len(src) < 20 or len(dst) < 20:
        return Verification(False, "too few confident points", T_ab, confidence)
    depth = float(np.median(dst[:, 2]))
    # never below the spacing of the stored (downsampled) pointmap's samples at that depth
    dist = max(cfg.inlier_distance, 0.75 / float(kf_a.K[0, 0])) * depth
    tree = cKDTree(dst)
    T = T_ab
    info: dict[str, Any] = {}
    if cfg.refine:
        res = robust_icp(src, dst, T_ab, dist, with_scale=use_sim3, tree=tree)
        corr = sim3.relative(T_ab, res.T)
        move_t = float(np.linalg.norm(corr[:3, 3])) / depth
        move_r = sim3.rotation_angle(sim3.rotation_of(corr))
        info.update(icp_translation=round(move_t, 5), icp_rotation=round(move_r, 5))
        if max(move_t, move_r) > cfg.max_correction:
            return Verification(False, f"ICP moved the pair estimate too much ({move_t:.3f} depth, "
                                f"{np.degrees(move_r):.1f} deg)", T_ab, confidence, info=info)
        T = res.T
    moved = sim3.transform_points(T, src)
    visible = _inside_image(moved, kf_a.K, kf_a.points.shape[:2])
    vis_frac = float(visible.mean())
    info["visible_fraction"] = round(vis_frac, 4)
    if vis_frac < MIN_VISIBLE_FRACTION:
        return Verification(False, f"views do not overlap (visible fraction {vis_frac:.2f})", T, confidence,
                            info=info)
    d, _ = tree.query(moved[visible])
    ratio = float((d < dist).mean())
    if ratio < cfg.min_inlier_ratio:
        return Verification(False, f"inlier ratio {ratio:.3f} < {cfg.min_inlier_ratio}", T, confidence, ratio,
                            info)
    return Verification(True, "ok", T, confidence, ratio, info)


def _inside_image(points: np.ndarray, K: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    z = points[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K[0, 0] * points[:, 0] / z + K[0, 2]
        v = K[1, 1] * points[:, 1] / z + K[1, 2]
    h, w = size
    return (z > 1e-6) & (u >= -0.5) & (u < w - 0.5) & (v >= -0.5) & (v < h - 0.5)


class LoopCloser:
    """Keeps the keyframe descriptors; retrieves and verifies loop candidates."""

    def __init__(self, cfg: LoopClosureConfig, kf_cfg: KeyframeConfig, frontend: Any, use_sim3: bool):
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

    def verify(self, kf_a: Keyframe, kf_b: Keyframe) -> Verification:
        return verify_pair(self.frontend, kf_a, kf_b, self.cfg, self.kf_cfg, self.use_sim3)
