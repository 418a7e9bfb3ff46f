"""Configuration of the classical RGB-D frontend (``frontend.rgbd`` section)."""

from __future__ import annotations

from dataclasses import dataclass, field

#: odometry methods: photometric + geometric (hybrid), photometric only, projective point-to-plane ICP,
#: hybrid followed by a point-to-plane ICP refinement at full working resolution, and ``auto``: ``hybrid``
#: when the start-up data check finds colour and depth pixel-aligned, else ``hybrid+icp``
METHODS = ("auto", "hybrid", "color", "icp", "hybrid+icp")

#: metres: the physical limit of active depth sensors (structured light, time of flight, active stereo
#: measure up to about 10 m). A larger value is no measurement: an invalid code (e.g. 65535 in a
#: millimetre PNG) or depth in the wrong units (``dataset.depth_scale``); it is treated as invalid.
SENSOR_RANGE_MAX = 20.0


@dataclass
class RgbdConfig:
    """Options of the ``rgbd`` frontend (Open3D tensor RGB-D odometry, frame-to-keyframe).

    Attributes:
        method: ``auto`` | ``hybrid`` | ``color`` | ``icp`` | ``hybrid+icp`` (see :data:`METHODS` and
            :func:`frontends.rgbd.odometry.estimate_motion`). ``auto`` follows the sensor: the photometric
            term is only unbiased when colour and depth are registered (pixel-aligned); for data whose colour
            comes from a second, unregistered camera the geometric ICP refinement has the last word.
        downsample: integer working-scale factor: images, depth and K are reduced by it (depth-aware
            block averaging) before odometry; the pointmap/confidence/colours are output at that size.
        depth_max: depth truncation in metres (farther depth is treated as invalid); None = keep every depth
            an active depth sensor can report (up to :data:`SENSOR_RANGE_MAX`). Far depth is noisy (Kinect-type sensors: sigma(z) ~ z^2, see
            ``confidence_depth_scale``) but it is down-weighted by the robust loss and the confidence, not
            thrown away: a cut that suits a small room deletes most of a large one.
        iterations: Gauss-Newton iterations per pyramid level, coarsest first (its length sets the number
            of pyramid levels).
        convergence: a pyramid level stops iterating once the relative change of the inlier RMSE and of
            the fitness between two iterations is below this. 1e-3 saves 15-30 % of the odometry's CPU at
            the same accuracy (docs/real_data.md) but lets Open3D's run-to-run last-bit differences change
            the number of iterations, i.e. poses by up to ~1 mm between otherwise identical runs.
        depth_outlier: depth difference (m) above which a correspondence is an outlier.
        depth_huber: Huber delta (m) of the depth residual.
        intensity_huber: Huber delta of the intensity residual (intensity in [0, 1]).
        keyframe_translation: a new odometry reference is taken when the camera moved this far from it, in
            units of the reference's median scene depth (scale-free: 0.1 = 20 cm at 2 m),
        keyframe_rotation_deg: or turned this much (degrees) from it,
        keyframe_min_fitness: or when the fraction of the frame's valid pixels that found an inlier
            correspondence in the reference drops below this.
        retry_below_fitness: when the fitness is below this, the frame is also aligned from the
            constant-velocity guess and from zero motion with one extra, coarser pyramid level, and the
            fittest of the three estimates is kept (robustness to sudden motion; costs time only then).
        min_fitness: tracking failure test 1: below this fitness (inlier fraction) the step failed.
        max_step_translation: failure test 2 (implausible motion): the estimate lies farther than this from
            the constant-velocity prediction (the recent motion), in units of the reference's median depth.
        max_step_rotation_deg: failure test 3: the estimate turns this much (degrees) away from the prediction.
            A failed step (or a solve that raised / went non-finite) is re-estimated from SIFT matches
            against the reference (PnP, then dense refinement; ``recover_pnp``); when that passes the same
            tests the frame is *recovered*. Otherwise the frame keeps the constant-velocity prediction,
            becomes the new reference (re-anchoring), its confidences are scaled by ``failure_confidence``
            and ``stats['odometry_failed']`` is set. Both are counted in the run's metrics.
        recover_pnp: try the feature-PnP recovery on a failed step.
        failure_confidence: confidence factor for frames whose odometry failed.
        confidence_depth_scale: depth (m) at which the per-point confidence halves (``1/(1+(z/s)^2)``).
        edge_jump: relative depth jump that marks a depth discontinuity (confidence 0 there); 0 = off.
        pair_global: let :meth:`pair` also start from SIFT-PnP and FPFH-RANSAC estimates (wide baselines).
        pair_starts: identity plus ``pair_starts - 1`` rotated initial guesses tried by :meth:`pair`.
        pair_inlier_distance: depth agreement (fraction of the depth) for a pair's verification.
        pair_grey_distance: mean grey-value agreement (of [0, 1]) of textureless cells in a pair's verification.
        descriptor_size: (width, height) of the descriptor's thumbnail grid.
    """

    method: str = "auto"
    downsample: int = 2
    depth_max: float | None = None
    iterations: list[int] = field(default_factory=lambda: [10, 10, 10])
    convergence: float = 1e-6
    depth_outlier: float = 0.07
    depth_huber: float = 0.05
    intensity_huber: float = 0.1
    keyframe_translation: float = 0.1
    keyframe_rotation_deg: float = 15.0
    keyframe_min_fitness: float = 0.6
    retry_below_fitness: float = 0.6
    min_fitness: float = 0.2
    max_step_translation: float = 0.15
    max_step_rotation_deg: float = 20.0
    recover_pnp: bool = True
    failure_confidence: float = 0.3
    confidence_depth_scale: float = 2.0
    edge_jump: float = 0.05
    pair_global: bool = True
    pair_starts: int = 1
    pair_inlier_distance: float = 0.03
    pair_grey_distance: float = 0.1
    descriptor_size: tuple[int, int] = (16, 12)

    def depth_limit(self) -> float:
        """Farthest depth used, in metres: ``depth_max`` when set, else :data:`SENSOR_RANGE_MAX`."""
        return SENSOR_RANGE_MAX if self.depth_max is None else min(float(self.depth_max), SENSOR_RANGE_MAX)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad option."""
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not isinstance(self.downsample, int) or self.downsample < 1:
            raise ValueError(f"downsample must be an integer >= 1, got {self.downsample!r}")
        if not self.iterations or any(int(i) < 1 for i in self.iterations):
            raise ValueError(f"iterations must be a non-empty list of positive integers, got {self.iterations!r}")
        if self.depth_max is not None and not self.depth_max > 0:
            raise ValueError(f"depth_max must be > 0 or null, got {self.depth_max!r}")
        for name in ("max_step_rotation_deg", "convergence", "depth_outlier", "depth_huber", "intensity_huber",
                     "confidence_depth_scale",
                     "max_step_translation", "pair_inlier_distance", "pair_grey_distance"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("keyframe_translation", "keyframe_rotation_deg", "edge_jump"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("keyframe_min_fitness", "retry_below_fitness", "min_fitness", "failure_confidence"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.pair_starts < 1:
            raise ValueError(f"pair_starts must be >= 1, got {self.pair_starts!r}")
        if len(self.descriptor_size) != 2 or min(self.descriptor_size) < 2:
            raise ValueError(f"descriptor_size must be (width, height) >= 2, got {self.descriptor_size!r}")
