"""The ``stereo`` frontend: metric visual odometry from a rectified stereo pair, without learned weights.

Per frame: dense depth by SGBM with a left-right check (:mod:`frontends.stereo.disparity`) at the working
size, keypoints with stereo-triangulated 3-D points at full resolution (:mod:`frontends.stereo.tracking`),
descriptor matches to the current *tracking keyframe* and PnP-RANSAC + LM refinement of the camera against
the keyframe's 3-D points, started from the constant-velocity prediction (and once more without it, by
EPnP, when that finds too few inliers). Poses are metric ``T_wc`` in the frame of the first frame of the segment.

Tracking failure: fewer than ``min_inliers`` PnP inliers, or a solution farther than ``max_step_depth``
times the keyframe's median point depth from the constant-velocity prediction. The frame then keeps the
prediction (``stats['tracking_failed']``, lowered pose and point confidence) and, when it has at least
``min_inliers`` stereo points itself, becomes the new tracking keyframe: its own stereo depth re-initialises
tracking in the same segment, so a failure costs the drift of one predicted step instead of a reset. A frame
without usable points (blank, blurred) leaves the last good keyframe in place for the next frames.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

import cv2
import numpy as np

from frontends.base import Frontend, register_frontend
from frontends.rgbd.descriptor import global_descriptor
from frontends.stereo.config import StereoConfig
from frontends.stereo.disparity import StereoDepth, stereo_depth
from frontends.stereo.tracking import StereoFeatures, make_detector, match, pnp, stereo_features
from slam.errors import ConfigError, DatasetError
from slam.geometry import inverse_pose, rotation_angle
from slam.types import Frame, FrontendOutput, PairEstimate


#: stereo views of the most recent frames kept for :meth:`StereoFrontend.pair` (~1.5 MB each at 1241x376)
VIEW_CACHE = 16


#: length of the colour-histogram part at the end of :func:`frontends.rgbd.descriptor.global_descriptor`
COLOUR_PART = 36


def stereo_descriptor(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Global descriptor of an hxwx3 uint8 image (see :func:`frontends.rgbd.descriptor.global_descriptor`).

    For a grey image (all channels equal, e.g. KITTI cameras 0/1) the colour histogram is the same for every
    frame and would only add a constant to every similarity: that part is dropped (zeroed) and the rest
    re-normalised, so that retrieval scores reflect layout and structure alone.
    """
    desc = global_descriptor(rgb, size)
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
        desc = desc.copy()
        desc[-COLOUR_PART:] = 0.0
        desc /= max(float(np.linalg.norm(desc)), 1e-12)
    return desc


def rotation_deg(T: np.ndarray) -> float:
    """Rotation angle (degrees) of a 4x4 rigid transform."""
    return float(np.degrees(rotation_angle(T)))


class _StereoView:
    """Everything the frontend computes for one stereo frame."""

    def __init__(self, dense: StereoDepth, features: StereoFeatures, K: np.ndarray):
        self.dense = dense
        self.features = features
        self.K = K  # full resolution
        z = features.points[features.has_point, 2]
        self.median_depth = float(np.median(z)) if len(z) else float("nan")


@register_frontend("stereo", StereoConfig)
class StereoFrontend(Frontend):
    """Classical metric stereo frontend (needs ``Frame.right``, ``Frame.baseline`` and ``Frame.K``)."""

    @classmethod
    def reads_stereo_pair(cls, config: StereoConfig) -> bool:
        return True

    def __init__(self, config: StereoConfig | None = None):
        self.cfg = config if config is not None else StereoConfig()
        try:
            self.cfg.validate()
        except ValueError as exc:
            raise ConfigError(f"invalid value in 'frontend.stereo': {exc}") from None
        self._detector = make_detector(self.cfg)
        # recent views by frame, so that pair() on a recent keyframe does not recompute its stereo
        # (pair() runs on the backend's worker thread: the cache is locked, and pair() detects with its own
        # detector object)
        self._views: OrderedDict[tuple, _StereoView] = OrderedDict()
        self._views_lock = threading.Lock()
        self._segment = -1
        self.reset()

    def reset(self) -> None:
        """Forget the keyframe and the motion model; the next frame starts a new segment at identity."""
        self._key: _StereoView | None = None
        self._key_index = -1
        self._T_w_key = np.eye(4)
        self._T_w_last = np.eye(4)
        self._velocity = np.eye(4)  # T_prev_cur of the last tracked step
        self._started = False

    # ------------------------------------------------------------------ per frame
    def _view(self, frame: Frame, detector) -> _StereoView:
        where = frame.source or f"frame {frame.index}"
        if frame.right is None or frame.baseline is None:
            raise DatasetError("frontend 'stereo' needs a stereo pair (right image and baseline) on every frame "
                               "but this frame has none (use a KITTI sequence with image_1/image_3 or a stereo "
                               "folder; or a learned frontend such as frontend.name=ttsa3r)", where)
        if frame.K is None:
            raise DatasetError("frontend 'stereo' needs camera intrinsics but this frame has none", where)
        if frame.right.shape != frame.rgb.shape:
            raise DatasetError(f"right image size {frame.right.shape[:2]} differs from left {frame.rgb.shape[:2]}",
                               where)
        K = np.asarray(frame.K, np.float64)
        dense = stereo_depth(frame.rgb, frame.right, K, float(frame.baseline), self.cfg)
        grey_l = cv2.cvtColor(np.ascontiguousarray(frame.rgb), cv2.COLOR_RGB2GRAY)
        grey_r = cv2.cvtColor(np.ascontiguousarray(frame.right), cv2.COLOR_RGB2GRAY)
        feats = stereo_features(grey_l, grey_r, dense.depth, K, float(frame.baseline), detector, self.cfg)
        return _StereoView(dense, feats, K)

    def _cached_view(self, frame: Frame, detector) -> _StereoView:
        key = (frame.source, frame.index, frame.timestamp, id(frame.rgb), id(frame.right))
        with self._views_lock:
            view = self._views.get(key)
        if view is None:
            view = self._view(frame, detector)
            with self._views_lock:
                self._views[key] = view
                while len(self._views) > VIEW_CACHE:
                    self._views.popitem(last=False)
        return view

    def step(self, frame: Frame) -> FrontendOutput:
        t0 = time.perf_counter()
        view = self._cached_view(frame, self._detector)
        t_view = time.perf_counter()
        stats: dict = {}
        failed = False
        if not self._started:
            self._segment += 1
            self._started = True
            pose = np.eye(4)
            new_key = True
            stats.update(pnp_inliers=None, pnp_matches=None)
        else:
            T_key_last = inverse_pose(self._T_w_key) @ self._T_w_last
            guess = T_key_last @ self._velocity
            pairs = match(self._key.features, view.features, self.cfg.ratio)
            est = pnp(self._key.features, view.features, pairs, view.K, self.cfg, guess_T_ab=guess)
            if est is None or est.n_inliers < self.cfg.min_inliers:  # retry without the motion prior (EPnP)
                retry = pnp(self._key.features, view.features, pairs, view.K, self.cfg)
                if retry is not None and (est is None or retry.n_inliers > est.n_inliers):
                    est = retry
            scene = self._key.median_depth if np.isfinite(self._key.median_depth) else 1.0
            if est is None:
                failed, reason = True, "no PnP solution"
            elif est.n_inliers < self.cfg.min_inliers:
                failed, reason = True, f"{est.n_inliers} PnP inliers"
            elif np.linalg.norm(est.T_ab[:3, 3] - guess[:3, 3]) > self.cfg.max_step_depth * scene:
                failed, reason = True, "jump from the constant-velocity prediction"
            else:
                reason = ""
            T_key_cur = guess if failed else est.T_ab
            pose = self._T_w_key @ T_key_cur
            if not failed:
                self._velocity = inverse_pose(self._T_w_last) @ pose
            n_key_points = int(self._key.features.has_point.sum())
            # after a failure the frame re-initialises tracking only if its own stereo points suffice
            # (a blank or blurred frame does not); otherwise the last good keyframe stays
            usable = int(view.features.has_point.sum()) >= self.cfg.min_inliers
            if failed:
                new_key = usable
            else:
                new_key = (est.n_inliers < self.cfg.keyframe_min_tracked * n_key_points
                           or np.linalg.norm(T_key_cur[:3, 3]) > self.cfg.keyframe_translation * scene
                           or rotation_deg(T_key_cur) > self.cfg.keyframe_rotation_deg)
            stats.update(pnp_inliers=None if est is None else est.n_inliers,
                         pnp_matches=None if est is None else est.n_matches,
                         pnp_rmse_px=None if est is None else round(est.rmse_px, 3))
            if failed:
                stats["failure_reason"] = reason
        self._T_w_last = pose
        if new_key:
            self._key, self._key_index, self._T_w_key = view, frame.index, pose
        conf = view.dense.confidence
        if failed:
            conf = conf * self.cfg.failure_confidence
        if failed:
            pose_conf = self.cfg.failure_confidence
        elif stats.get("pnp_inliers") is None:
            pose_conf = 1.0
        else:  # trust grows with the inlier count up to a few times the failure threshold
            pose_conf = float(np.clip(stats["pnp_inliers"] / (4.0 * self.cfg.min_inliers), 0.05, 1.0))
        stats.update(tracking_failed=failed, new_keyframe=new_key, keyframe_index=self._key_index,
                     stereo_points=int(view.features.has_point.sum()),
                     valid_depth_fraction=round(view.dense.valid_fraction, 4),
                     view_ms=round(1000 * (t_view - t0), 2),  # dense depth + stereo features
                     time_ms=round(1000 * (time.perf_counter() - t0), 2))
        return FrontendOutput(pose=pose, points=view.dense.points(), confidence=conf, K=view.dense.K,
                              segment=self._segment, colors=view.dense.rgb,
                              descriptor=stereo_descriptor(view.dense.rgb, self.cfg.descriptor_size),
                              metric=True, pose_confidence=pose_conf, stats=stats)

    # ------------------------------------------------------------------ pairs
    def pair(self, a: Frame, b: Frame) -> PairEstimate:
        """Pose of ``b`` in ``a``'s camera frame from scratch: PnP of b's keypoints against a's stereo points.

        The confidence is the PnP inlier fraction of the descriptor matches, and 0 with fewer than
        ``pair_min_inliers`` inliers. ``points_a``/``points_b`` are both dense pointmaps in a's frame.
        """
        detector = make_detector(self.cfg)
        va, vb = self._cached_view(a, detector), self._cached_view(b, detector)
        est = pnp(va.features, vb.features, match(va.features, vb.features, self.cfg.ratio), va.K, self.cfg)
        if est is None:
            T_ab, confidence, info = np.eye(4), 0.0, {"pnp_inliers": 0, "pnp_matches": 0}
        else:
            T_ab = est.T_ab
            enough = est.n_inliers >= self.cfg.pair_min_inliers
            confidence = est.n_inliers / max(est.n_matches, 1) if enough else 0.0
            info = {"pnp_inliers": est.n_inliers, "pnp_matches": est.n_matches, "pnp_rmse_px": round(est.rmse_px, 3)}
        R, t = T_ab[:3, :3].astype(np.float32), T_ab[:3, 3].astype(np.float32)
        pts_b = vb.dense.points()
        pts_b = np.where((vb.dense.depth > 0)[..., None], pts_b @ R.T + t, 0.0).astype(np.float32)
        return PairEstimate(T_ab=T_ab, confidence=float(confidence), points_a=va.dense.points(), points_b=pts_b,
                            conf_a=va.dense.confidence, conf_b=vb.dense.confidence, info=info)
