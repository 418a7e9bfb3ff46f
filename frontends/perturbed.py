"""The ``perturbed`` frontend: any registered frontend made to look like an up-to-scale learned one.

Learned frontends (CUT3R, TTT3R, TTSA3R, ...) report poses and pointmaps in a unit that drifts along the
stream, answer ``pair()`` at an arbitrary scale of their own, lose their state now and then (a new segment
with a new world frame) and sometimes return nothing useful for a frame. This wrapper applies exactly these
degradations, seeded, to a metric frontend (e.g. ``rgbd``) so that a backend's up-to-scale (Sim(3)) path can
be tested on real recordings with ground truth::

    slam run --data SEQ frontend=perturbed frontend.perturbed.inner=rgbd \\
        frontend.perturbed.scale_drift=0.001 frontend.perturbed.pair_log_scale=0.2

Model (frame ``i`` of a segment, inner output pose ``T_i`` and camera-frame pointmap ``X_i``):

* stream unit ``s_i = exp(l_i)``, ``l_i = l_{i-1} + scale_drift + scale_walk * N(0, 1)``; ``l_0`` of each
  segment is uniform in ``[-segment_log_scale, segment_log_scale]``;
* the inner relative motion ``T_{i-1}^-1 T_i`` gets pose noise (rotation ``N(0, rotation_noise_deg)`` about a
  random axis, translation ``N(0, translation_noise * median depth)`` per axis), its translation is
  multiplied by ``s_i``, and the reported poses chain these motions: ``P_i = P_{i-1} (R, s_i t)``; the first
  frame of a segment reports the inner pose with its translation times ``s_0``;
* the pointmap is ``s_i X_i``: pose and pointmap of one frame share one unit, as a learned frontend's do;
* every ``reset_every`` frames the inner frontend is reset (a new segment starts);
* with probability ``drop_probability`` a frame is dropped: the inner frontend never sees it and the output
  repeats the previous one (pose, pointmap) with ``pose_confidence`` times ``DROPPED_POSE_CONFIDENCE``;
* ``pair(a, b)``: the inner pair estimate with translation and pointmaps multiplied by a random factor
  ``exp(U(-pair_log_scale, pair_log_scale))`` (the unit of the pair; the relative scale of b to a, if any,
  is kept).

Every output has ``metric=False``. Each degradation draws from its own random stream, seeded by ``seed``,
the degradation and the frame index (the segment number; the two frame indices of a pair): switching one
degradation on does not change the draws of the others, a frame gets the same draws whatever came before
it, and the same pair of frames always answers at the same scale. Written against the public frontend API
only (:mod:`frontends.base`, :mod:`slam.types`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from frontends.base import Frontend, create, frontend_config_class, reads_stereo_pair, register_frontend
from slam.errors import ConfigError
from slam.pointmaps import median_depth
from slam.types import Frame, FrontendOutput, PairEstimate

_KINDS = ("scale", "noise", "pair", "drop", "segment")
#: a dropped frame's pose confidence is the previous output's times this
DROPPED_POSE_CONFIDENCE = 0.1


@dataclass
class PerturbedConfig:
    """Options of the ``perturbed`` frontend (``frontend.perturbed`` section).

    Attributes:
        inner: registered name of the wrapped frontend.
        inner_options: options of the wrapped frontend (keys of its config dataclass; its defaults otherwise).
        seed: seed of all random draws.
        scale_drift: log-scale change per frame (deterministic rate; 0.001 = 0.1 % per frame).
        scale_walk: standard deviation of a random-walk log-scale step per frame.
        segment_log_scale: each segment starts at a log scale uniform in +-this.
        rotation_noise_deg: standard deviation of the rotation noise added to each frame's relative motion.
        translation_noise: standard deviation per axis of the translation noise added to each frame's
            relative motion, relative to the frame's median scene depth.
        pair_log_scale: ``pair()`` answers at a scale ``exp(U(-this, this))``.
        reset_every: reset the inner frontend every this many frames (0 = never).
        drop_probability: probability that a frame is dropped (see module docstring).
    """

    inner: str = "rgbd"
    inner_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    scale_drift: float = 0.001
    scale_walk: float = 0.0
    segment_log_scale: float = 0.0
    rotation_noise_deg: float = 0.0
    translation_noise: float = 0.0
    pair_log_scale: float = 0.2
    reset_every: int = 0
    drop_probability: float = 0.0

    def validate(self) -> None:
        if self.inner == "perturbed":
            raise ValueError("inner must name another frontend than 'perturbed'")
        for name in ("scale_walk", "segment_log_scale", "rotation_noise_deg", "translation_noise",
                     "pair_log_scale"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.reset_every < 0:
            raise ValueError(f"reset_every must be >= 0, got {self.reset_every!r}")
        if not 0.0 <= self.drop_probability < 1.0:
            raise ValueError(f"drop_probability must be in [0, 1), got {self.drop_probability!r}")


def _inner_config(cfg: PerturbedConfig) -> Any:
    """The wrapped frontend's config dataclass filled from ``cfg.inner_options``."""
    from frontends.base import FRONTENDS
    from slam.config_loader import build

    if cfg.inner not in FRONTENDS:
        raise ConfigError(f"unknown frontend '{cfg.inner}' in 'frontend.perturbed.inner' "
                          f"(known: {', '.join(FRONTENDS.names())})")
    cls = frontend_config_class(FRONTENDS.get(cfg.inner).section)
    return build(cls, dict(cfg.inner_options), {}, "frontend.perturbed.inner_options.")


def _rotation(rng: np.random.Generator, sigma_deg: float) -> np.ndarray:
    """3x3 rotation by ``N(0, sigma_deg)`` degrees about a uniformly random axis."""
    from scipy.spatial.transform import Rotation

    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis) + 1e-12
    angle = np.radians(sigma_deg) * rng.normal()
    return Rotation.from_rotvec(angle * axis).as_matrix()


@register_frontend("perturbed", PerturbedConfig)
class PerturbedFrontend(Frontend):
    """Wraps a frontend and degrades it into an up-to-scale one (see module docstring).

    Args:
        config: the options; ``config.inner`` names the wrapped frontend.
        inner: an already built frontend to wrap instead of creating ``config.inner`` (tools replaying one
            inner frontend under several perturbations).
    """

    @classmethod
    def reads_stereo_pair(cls, config: PerturbedConfig) -> bool:
        """As the wrapped frontend."""
        return reads_stereo_pair(config.inner, _inner_config(config))

    def __init__(self, config: PerturbedConfig | None = None, inner: Frontend | None = None):
        self.cfg = config if config is not None else PerturbedConfig()
        try:
            self.cfg.validate()
        except ValueError as exc:
            raise ConfigError(f"invalid value in 'frontend.perturbed': {exc}") from None
        self.inner = inner if inner is not None else create(self.cfg.inner, _inner_config(self.cfg))
        self._segment = -1
        self._count = 0
        self._start_segment()

    def usable_depth(self) -> tuple[float, float] | None:
        """The wrapped frontend's depth range."""
        return self.inner.usable_depth()

    # ------------------------------------------------------------------ state
    def _start_segment(self) -> None:
        self._segment += 1
        r = self.cfg.segment_log_scale
        self._log_scale = float(self._rng("segment", self._segment).uniform(-r, r)) if r > 0 else 0.0
        self._inner_segment: int | None = None
        self._inner_last: np.ndarray | None = None  # inner pose of the last frame the inner frontend saw
        self._pose: np.ndarray | None = None  # reported pose of that frame
        self._last: FrontendOutput | None = None

    def _rng(self, kind: str, *keys: int) -> np.random.Generator:
        """The random stream of one degradation for one frame (or segment, or frame pair): a function of
        ``seed``, the degradation and the keys only, so a frame gets the same draws whatever came before."""
        return np.random.default_rng([self.cfg.seed, _KINDS.index(kind), *(int(k) for k in keys)])

    def reset(self) -> None:
        """Reset the inner frontend; the next step starts a new segment."""
        self.inner.reset()
        self._start_segment()

    @property
    def scale(self) -> float:
        """Current stream unit ``s_i`` (reported length = metric length times this)."""
        return float(np.exp(self._log_scale))

    # ------------------------------------------------------------------ stream
    def step(self, frame: Frame) -> FrontendOutput:
        cfg = self.cfg
        if cfg.reset_every and self._count > 0 and self._count % cfg.reset_every == 0:
            self.reset()
        self._count += 1
        dropped = cfg.drop_probability > 0 and self._rng("drop", frame.index).random() < cfg.drop_probability
        if dropped and self._last is not None:
            out = dataclasses.replace(self._last, pose_confidence=self._last.pose_confidence * DROPPED_POSE_CONFIDENCE,
                                      stats={**self._last.stats, "dropped": True})
            self._last = out
            return out
        out = self.inner.step(frame)
        if self._inner_segment is not None and out.segment != self._inner_segment:
            self._start_segment()  # the inner frontend reset on its own
        first = self._inner_segment is None
        self._inner_segment = out.segment
        if not first:
            self._log_scale += cfg.scale_drift + (cfg.scale_walk * float(self._rng("scale", frame.index).normal())
                                                  if cfg.scale_walk > 0 else 0.0)
        s = self.scale
        if first:
            pose = np.asarray(out.pose, dtype=np.float64).copy()
            pose[:3, 3] *= s
        else:
            rel = np.linalg.inv(self._inner_last) @ out.pose
            rel = self._noisy(rel, out, self._rng("noise", frame.index))
            rel[:3, 3] *= s
            pose = self._pose @ rel
        self._inner_last = np.asarray(out.pose, dtype=np.float64)
        self._pose = pose
        result = dataclasses.replace(out, pose=pose, points=(out.points * np.float32(s)).astype(np.float32),
                                     metric=False, segment=self._segment,
                                     stats={**out.stats, "perturbed_scale": round(s, 6), "dropped": False})
        self._last = result
        return result

    def _noisy(self, rel: np.ndarray, out: FrontendOutput, rng: np.random.Generator) -> np.ndarray:
        """``rel`` (4x4 metric relative motion) with the configured pose noise."""
        cfg = self.cfg
        rel = np.asarray(rel, dtype=np.float64).copy()
        if cfg.rotation_noise_deg > 0:
            rel[:3, :3] = _rotation(rng, cfg.rotation_noise_deg) @ rel[:3, :3]
        if cfg.translation_noise > 0:
            depth = median_depth(out.points, out.confidence)
            rel[:3, 3] += cfg.translation_noise * depth * rng.normal(size=3)
        return rel

    # ------------------------------------------------------------------ pairs
    def pair(self, a: Frame, b: Frame) -> PairEstimate:
        """The inner pair estimate at a random scale ``exp(U(-pair_log_scale, pair_log_scale))``
        (``info['perturbed_scale']``)."""
        est = self.inner.pair(a, b)
        r = self.cfg.pair_log_scale
        f = float(np.exp(self._rng("pair", a.index, b.index).uniform(-r, r))) if r > 0 else 1.0
        T = np.asarray(est.T_ab, dtype=np.float64).copy()
        T[:3, 3] *= f

        def scaled(p):
            return None if p is None else (p * np.float32(f)).astype(np.float32)

        return dataclasses.replace(est, T_ab=T, points_a=scaled(est.points_a),
                                   points_b=scaled(est.points_b), info={**est.info, "perturbed_scale": f})

    def close(self) -> None:
        self.inner.close()
