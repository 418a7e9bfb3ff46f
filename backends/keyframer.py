"""Keyframe selection (motion and overlap tests) and keyframe construction (downsampled pointmaps).

All tests compare the current frame with the current keyframe *within one frontend segment*, using the
frontend's own poses (camera-to-world in the segment's world frame) and the keyframe's pointmap in its
camera frame. Translation is measured relative to the keyframe's median scene depth, so the same
thresholds work for metric (RGB-D) and up-to-scale (learned) frontends.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from backends.config import KeyframeConfig
from slam import geometry
from slam.pointmaps import median_depth
from slam.types import Frame, FrontendOutput, Keyframe


@dataclass
class KeyframeDecision:
    """Outcome of the keyframe test.

    Attributes:
        is_keyframe: make a keyframe from this frame.
        reason: 'first', 'segment', 'translation', 'rotation', 'overlap', 'interval' or '' (not a keyframe).
        translation: translation to the keyframe relative to its median depth.
        rotation_deg: rotation to the keyframe in degrees.
        overlap: fraction of the keyframe's confident points visible in this frame (1.0 if not computed).
    """

    is_keyframe: bool
    reason: str = ""
    translation: float = 0.0
    rotation_deg: float = 0.0
    overlap: float = 1.0


def visible_fraction(points_kf: np.ndarray, T_kf_cur: np.ndarray, K: np.ndarray, size: tuple[int, int]) -> float:
    """Fraction of keyframe points (N, 3, keyframe camera frame) that project inside the current image.

    ``T_kf_cur`` is the current camera's pose in the keyframe frame; ``K`` and ``size`` (h, w) belong to the
    image the points are projected into.
    """
    if len(points_kf) == 0:
        return 0.0
    p = geometry.transform_points(geometry.inverse_pose(T_kf_cur), points_kf)
    uv, z = geometry.project_points(p[p[:, 2] > 1e-6], K)
    u, v = uv[:, 0], uv[:, 1]
    h, w = size
    inside = (u >= -0.5) & (u < w - 0.5) & (v >= -0.5) & (v < h - 0.5)
    return float(inside.sum()) / len(points_kf)


class Keyframer:
    """Decides which frames become keyframes and builds :class:`Keyframe` objects."""

    def __init__(self, cfg: KeyframeConfig):
        self.cfg = cfg
        self._ref: Keyframe | None = None
        self._ref_points: np.ndarray | None = None  # (N, 3) confident points of the reference keyframe
        self._ref_depth = 1.0
        self._frames_since = 0

    def decide(self, out: FrontendOutput) -> KeyframeDecision:
        """Keyframe test of a frontend output against the current keyframe (does not change state)."""
        if self._ref is None:
            return KeyframeDecision(True, "first")
        if out.segment != self._ref.segment:
            return KeyframeDecision(True, "segment")
        T_rel = geometry.relative_pose(self._ref.frontend_pose, out.pose)
        trans = float(np.linalg.norm(T_rel[:3, 3])) / self._ref_depth
        rot = np.degrees(geometry.rotation_angle(geometry.rotation_of(T_rel)))
        d = KeyframeDecision(False, "", trans, rot)
        if trans > self.cfg.translation:
            d.is_keyframe, d.reason = True, "translation"
        elif rot > self.cfg.rotation_deg:
            d.is_keyframe, d.reason = True, "rotation"
        elif self.cfg.max_interval and self._frames_since + 1 >= self.cfg.max_interval:
            d.is_keyframe, d.reason = True, "interval"
        else:
            d.overlap = visible_fraction(self._ref_points, T_rel, out.K, out.working_size)
            if d.overlap < self.cfg.min_overlap:
                d.is_keyframe, d.reason = True, "overlap"
        return d

    def observe(self, decision: KeyframeDecision, keyframe: Keyframe | None) -> None:
        """Advance the state after a decision; ``keyframe`` is the new keyframe when one was made."""
        if keyframe is None:
            self._frames_since += 1
            return
        self._ref = keyframe
        self._frames_since = 0
        mask = keyframe.confidence > self.cfg.min_confidence
        mask &= np.isfinite(keyframe.points).all(-1) & (keyframe.points[..., 2] > 0)
        self._ref_points = keyframe.points[mask].astype(np.float64)
        self._ref_depth = median_depth(keyframe.points, keyframe.confidence, self.cfg.min_confidence)

    def make_keyframe(self, kf_id: int, frame: Frame, out: FrontendOutput, pose: np.ndarray) -> Keyframe:
        """Build a keyframe: pointmap, confidence, colours downsampled by ``stride``; K scaled to match.

        Memory per keyframe: (h/stride)*(w/stride)*(12 + 4 + 3) bytes for points/confidence/colours, plus
        the input Frame when ``keep_frame`` (full-size RGB + depth; the backend worker compresses it when
        ``pack_frame``, :mod:`slam.packed_frame`).
        """
        s = self.cfg.stride
        h, w = out.working_size
        colors = out.colors
        if colors is None:
            colors = cv2.resize(frame.rgb, (w, h), interpolation=cv2.INTER_AREA) if frame.rgb.shape[:2] != (h, w) \
                else frame.rgb
        K = np.asarray(out.K, dtype=np.float64).copy()
        K[0, :] /= s
        K[1, :] /= s
        return Keyframe(
            id=kf_id,
            frame_index=frame.index,
            timestamp=frame.timestamp,
            points=np.ascontiguousarray(out.points[::s, ::s], dtype=np.float32),
            confidence=np.ascontiguousarray(out.confidence[::s, ::s], dtype=np.float32),
            colors=np.ascontiguousarray(colors[::s, ::s], dtype=np.uint8),
            K=K,
            pose=np.asarray(pose, dtype=np.float64).copy(),
            frontend_pose=np.asarray(out.pose, dtype=np.float64).copy(),
            segment=out.segment,
            descriptor=None if out.descriptor is None else np.asarray(out.descriptor, dtype=np.float32),
            metric=out.metric,
            frame=frame if self.cfg.keep_frame else None,
        )
