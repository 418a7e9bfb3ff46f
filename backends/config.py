"""Typed configuration of the SLAM backend (the ``backend:`` section of the run configuration).

The YAML section maps one-to-one onto :class:`BackendConfig` (nested sections are nested dataclasses). Every
section has a ``validate()`` that raises ``ValueError``; the config loader turns that into a
:class:`~slam.errors.ConfigError` naming the key. ``BackendConfig.from_dict`` does the same for callers that
build the backend without the run configuration (tools, tests).

Presets (``backend.preset``, shorthand ``backend=<preset>`` on the command line):
    ``odometry``: plain odometry: frontend poses chained through keyframes, no loop closure, no alignment.
    ``loops``: pose graph + loop closure.
    ``full`` (default): pose graph + loop closure + global alignment at the end of the run.
``loop_closure.enabled`` / ``global_alignment.enabled`` override the preset when set (not None).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from backends.registry import BACKENDS
from slam.config_loader import require

PRESETS = ("odometry", "loops", "full")


@dataclass
class KeyframeConfig:
    """Keyframe selection and storage.

    A frame becomes a keyframe when any threshold is passed relative to the current keyframe.

    Attributes:
        translation: camera translation relative to the keyframe's median scene depth (scale-free).
        rotation_deg: rotation angle in degrees.
        min_overlap: minimum fraction of the keyframe's confident points still visible in the frame.
        max_interval: make a keyframe at least every this many frames (0 = no limit).
        stride: pixel stride used to downsample the stored pointmap (memory ~ 16 bytes per stored point).
        min_confidence: points with confidence at or below this are ignored (overlap, alignment).
        blend_frames: a frame between two keyframes of one segment takes its pose relative to both and
            blends the two by its position between them (so that the trajectory stays continuous when an
            optimisation corrects neighbouring keyframes differently); False: relative to the previous
            keyframe only. Frames after the newest keyframe always follow it alone.
        keep_frame: keep the input Frame of each keyframe (needed by ``frontend.pair`` for loop closure and
            segment links; costs the full image + depth per keyframe, ~2.1 MB at 640x480 RGB-D).
        pack_frame: hold a kept frame losslessly compressed (:mod:`slam.packed_frame`), decoded when read:
            ~4x less memory per keyframe for 10-25 ms of the backend worker's CPU per keyframe, which on two
            cores is taken from the frontend. Worth it where keyframes are frequent and frames large (the
            ``stereo`` frontend's YAML turns it on).
    """

    translation: float = 0.1
    rotation_deg: float = 10.0
    min_overlap: float = 0.7
    max_interval: int = 0
    stride: int = 8
    min_confidence: float = 0.0
    blend_frames: bool = True
    keep_frame: bool = True
    pack_frame: bool = False

    def validate(self) -> None:
        require(self, translation={"gt": 0}, rotation_deg={"gt": 0})
        if not 0.0 <= self.min_overlap <= 1.0:
            raise ValueError(f"min_overlap must be in [0, 1], got {self.min_overlap}")
        require(self, max_interval={"ge": 0}, stride={"ge": 1})


@dataclass
class GraphConfig:
    """Pose graph (GTSAM, iSAM2).

    Attributes:
        type: ``sim3`` (Similarity3 nodes), ``se3`` (Pose3 nodes) or ``auto`` (se3 for metric frontends).
        odometry_sigma_rot_deg: odometry rotation noise per edge, degrees.
        odometry_sigma_trans: odometry translation noise per edge, relative to the keyframe's median depth.
            All odometry sigmas are divided by the frontend's lowest ``pose_confidence`` along the edge.
        odometry_sigma_scale: odometry log-scale noise per edge (Sim(3) only).
        loop_sigma_rot_deg, loop_sigma_trans, loop_sigma_scale: the same for loop and segment-link edges
            (divided by the pair estimate's confidence).
        robust: robust kernel of loop edges: ``cauchy``, ``huber`` or ``none``.
        robust_k: kernel width in whitened units (sigmas).
        max_residual: a loop (or segment link) whose whitened residual (Mahalanobis norm, in sigmas) in the
            least-squares solution exceeds this is inconsistent with the rest of the graph and is dropped.
            Checked right after each loop is added (online) and again at ``finalize``.
        final: batch re-solve at ``finalize``: ``consistency`` (least squares; the edge with the largest
            residual above ``max_residual`` is dropped and the graph re-solved, until none is), ``gnc``
            (GTSAM's graduated non-convexity, truncated least squares, odometry as known inliers) or
            ``robust`` (Levenberg-Marquardt with the robust kernels only).
        relinearize_threshold: iSAM2 relinearisation threshold.
        relinearize_skip: iSAM2 considers relinearising only every this many updates (GTSAM's default 10);
            loop updates run extra iterations and ``finalize`` re-solves in batch, so accuracy is unaffected.
        partial_relinearization_check: iSAM2 checks only the variables touched by an update for
            relinearisation (keeps updates from growing with the graph's size).
    """

    type: str = "auto"
    odometry_sigma_rot_deg: float = 0.5
    odometry_sigma_trans: float = 0.01
    odometry_sigma_scale: float = 0.01
    loop_sigma_rot_deg: float = 1.0
    loop_sigma_trans: float = 0.02
    loop_sigma_scale: float = 0.02
    robust: str = "huber"
    robust_k: float = 3.0
    max_residual: float = 5.0
    final: str = "consistency"
    relinearize_threshold: float = 0.01
    relinearize_skip: int = 10
    partial_relinearization_check: bool = True

    def validate(self) -> None:
        if self.relinearize_skip < 1:
            raise ValueError(f"relinearize_skip must be >= 1, got {self.relinearize_skip}")
        if self.type not in ("sim3", "se3", "auto"):
            raise ValueError(f"type must be sim3, se3 or auto, got {self.type!r}")
        if self.final not in ("consistency", "gnc", "robust"):
            raise ValueError(f"final must be consistency, gnc or robust, got {self.final!r}")
        if self.robust not in ("cauchy", "huber", "none"):
            raise ValueError(f"robust must be cauchy, huber or none, got {self.robust!r}")
        positive = ("odometry_sigma_rot_deg", "odometry_sigma_trans", "odometry_sigma_scale", "loop_sigma_rot_deg",
                    "loop_sigma_trans", "loop_sigma_scale", "robust_k", "max_residual")
        require(self, **{name: {"gt": 0} for name in positive})


@dataclass
class LoopClosureConfig:
    """Loop closure: retrieval, verification and loop edges.

    Attributes:
        enabled: None = follow the preset.
        top_k: candidates verified per new keyframe.
        min_score: minimum descriptor cosine similarity of a candidate.
        recent_window: the newest keyframes excluded from retrieval (they are neighbours, not loops).
        min_pair_confidence: reject a candidate whose pair estimate is less confident.
        inlier_distance: point inlier distance for the geometric check, relative to the median depth.
        min_inlier_ratio: minimum fraction of the new keyframe's points landing on the old keyframe's surface
            that lie within ``inlier_distance`` of it.
        max_correction: reject when refinement moves the hypothesis by more than this (translation relative
            to depth, rotation in radians, Sim(3) scale as |log| = relative change of depths); a sign the
            hypothesis was wrong.
        refine: refine the hypothesis (point-to-plane alignment of the keyframe pointmaps, coarse to fine)
            and use the refined one as the loop measurement.
        dense_refine: after the point refinement, let the frontend refine the hypothesis with its own dense
            alignment of the two stored frames (``Frontend.refine_pair``, e.g. photometric + depth for
            ``rgbd``) when it offers one and both keyframes are metric. Point alignment of noisy depth is
            less precise than the frontend's odometry; with this, a loop edge is about as precise as an
            odometry edge.
        use_graph_prior: try the pose graph's current relative pose as the first hypothesis (cheap; right
            when the drift since the old keyframe is within the refinement's reach; needs ``refine``).
        min_observability: a graph-prior hypothesis is accepted only when the pointmaps pin every direction of
            the relative pose (:func:`backends.global_alignment.observability` >= this); otherwise the
            refinement would just return the prior along the free direction (e.g. sliding along a wall).
        pair_estimate: ask ``frontend.pair`` for a hypothesis when the graph prior fails.
        max_pair_estimates: ``frontend.pair`` calls per new keyframe at most (best-scored candidates first).
        max_loops_per_keyframe: accepted loops per new keyframe at most.
    """

    enabled: bool | None = None
    top_k: int = 3
    min_score: float = 0.65
    recent_window: int = 10
    min_pair_confidence: float = 0.3
    inlier_distance: float = 0.02
    min_inlier_ratio: float = 0.7
    max_correction: float = 0.2
    refine: bool = True
    dense_refine: bool = True
    use_graph_prior: bool = True
    min_observability: float = 0.003
    pair_estimate: bool = True
    max_pair_estimates: int = 1
    max_loops_per_keyframe: int = 1

    def validate(self) -> None:
        require(self, top_k={"ge": 1}, recent_window={"ge": 0}, max_loops_per_keyframe={"ge": 1},
                max_pair_estimates={"ge": 0})
        if not -1.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be in [-1, 1], got {self.min_score}")
        require(self, min_inlier_ratio={"ge": 0, "le": 1}, inlier_distance={"gt": 0})


@dataclass
class DepthNoiseConfig:
    """Depth noise model of a metric depth sensor, used to weight point residuals of metric keyframes.

    A structured-light or active-stereo camera triangulates depth from a disparity measured to a fraction
    of a pixel, so its axial (along the ray) noise grows with the square of the depth:
    ``sigma_z(z) = axial * z^2``; across the ray a point is off by a fraction of a pixel, i.e. by an angle:
    ``sigma_lat(z) = lateral * z``. Defaults are Kinect v1 figures from the literature: Khoshelham and
    Oude Elberink (Sensors 2012) measured the random depth error growing as about 1.4 mm x (z / 1 m)^2;
    Nguyen, Izadi and Lovell (3DIMPVT 2012) found a lateral error under one pixel (about 0.8 px at a focal
    length of ~580 px, i.e. ~1.4 mrad). See ``docs/depth_noise.md``.

    Attributes:
        enabled: whiten point residuals of metric keyframes by this model (up-to-scale keyframes always
            use the scale-free ``huber`` x depth widths and confidence weights).
        axial: coefficient of ``sigma_z = axial * z^2``, 1/m.
        lateral: lateral noise as an angle, radians (``sigma_lat = lateral * z``).
        huber: Huber kernel width on the normalised residual, in sigmas.
    """

    enabled: bool = True
    axial: float = 1.4e-3
    lateral: float = 1.4e-3
    huber: float = 2.0

    def validate(self) -> None:
        require(self, axial={"ge": 0}, lateral={"ge": 0}, huber={"gt": 0})
        if self.axial == 0 and self.lateral == 0:
            raise ValueError("axial and lateral cannot both be 0 (zero noise gives infinite weights)")


@dataclass
class GlobalAlignmentConfig:
    """Sparse global alignment of keyframe pointmaps along the graph's edges.

    Attributes:
        enabled: None = follow the preset.
        every_k: also run every this many keyframes during the run (0 = only at the end).
        iterations: outer iterations (re-association + one Gauss-Newton step each).
        max_points: points sampled per keyframe for alignment.
        max_distance: correspondence gate, relative to the point's depth.
        huber: Huber width of the point residuals, relative to depth.
        skip_edges: also align keyframe i with i+2..i+1+skip_edges (covisibility), not only graph edges.
        covisible: also align every pair of keyframes further apart in the stream that see the same surfaces
            (at the pose-graph solution), where the trajectory meets itself again: these pairs measure the
            long-range drift directly, not only through the loop edges; False aligns graph and short
            covisibility edges only (the far pairs then all serve the safeguard).
        min_covisibility: fraction of a keyframe's samples that must land on the other's surface for a pair to
            count as covisible.
        max_partners: covisible partners per keyframe at most, those farthest apart in the stream first
            (0 = no limit); keeps the pair count linear in the keyframes.
        holdout_every: every this-many-th covisible pair is held out of the alignment for the safeguard
            (< 2: none held out; the safeguard then sees short-range pairs only).
        prior_weight: weight of each graph edge's relative pose in the pose-graph solution (as virtual point
            pairs) relative to the edge's real point pairs; holds directions that the geometry leaves free.
            The pose graph's relative poses come from the same depth (odometry, loop alignments) as the
            point pairs, so at full weight the same evidence would count twice; a tenth keeps them as a
            tie-breaker (measurements in ``docs/tuning.md``).
        safeguard: accept the result only when it lowers the point-to-plane error of held-out keyframe
            pairs (not used by the alignment: short-range ones and every ``holdout_every``-th far covisible
            one, where loops close), fits the loop and segment-link measurements no worse than the pose
            graph (SE(3) graph: or within their noise model), and moves no odometry edge more than
            ``max_odometry_residual`` sigmas from its original measurement unless the edge's points agree
            better after the move (then the odometry was wrong); otherwise keep the pose-graph solution.
        max_odometry_residual: see ``safeguard`` (whitened units of the odometry noise model).
        solve_scale: with a Sim(3) graph (up-to-scale frontends), also solve each keyframe's scale from the
            points; False keeps the scales of the pose-graph solution (odometry, loops, segment links) and
            aligns rotations and translations only. Point-to-plane residuals of one depth map leave scale
            and translation along the viewing direction nearly interchangeable, so per-keyframe scales solved
            from them wander (noise in every keyframe's depth becomes scale noise along the trajectory).
        depth_noise: sensor noise model weighting the point residuals of metric keyframes (replaces
            ``huber`` x depth as residual width there; :class:`DepthNoiseConfig`).
    """

    enabled: bool | None = None
    every_k: int = 0
    iterations: int = 15
    max_points: int = 2000
    max_distance: float = 0.02
    huber: float = 0.01
    skip_edges: int = 2
    covisible: bool = True
    min_covisibility: float = 0.3
    max_partners: int = 10
    holdout_every: int = 4
    prior_weight: float = 0.1
    safeguard: bool = True
    max_odometry_residual: float = 5.0
    solve_scale: bool = False
    depth_noise: DepthNoiseConfig = field(default_factory=DepthNoiseConfig)

    def validate(self) -> None:
        self.depth_noise.validate()
        require(self, prior_weight={"ge": 0}, max_odometry_residual={"gt": 0}, every_k={"ge": 0},
                iterations={"ge": 0}, max_points={"ge": 10}, skip_edges={"ge": 0}, max_distance={"gt": 0},
                huber={"gt": 0}, max_partners={"ge": 0}, holdout_every={"ge": 0},
                min_covisibility={"gt": 0, "le": 1})


@dataclass
class BackendConfig:
    """``backend:`` section.

    Attributes:
        name: registered backend (``graph``: keyframes + GTSAM pose graph, see :mod:`backends.registry`).
        preset: ``odometry``, ``loops`` or ``full`` (see module docstring).
        sync: run optimisation, retrieval and verification inline (deterministic, for tests); otherwise a
            worker thread does them off the per-frame path.
        queue_size: bound of the worker's job queue (the per-frame path blocks only when it is full).
        segment_link_candidates: recent keyframes of the previous segment tried with ``frontend.pair`` when
            the frontend starts a new segment.
    """

    name: str = "graph"
    preset: str = "full"
    sync: bool = False
    queue_size: int = 64
    segment_link_candidates: int = 3
    keyframe: KeyframeConfig = field(default_factory=KeyframeConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    loop_closure: LoopClosureConfig = field(default_factory=LoopClosureConfig)
    global_alignment: GlobalAlignmentConfig = field(default_factory=GlobalAlignmentConfig)

    def validate(self) -> None:
        if self.name not in BACKENDS:
            raise ValueError(f"name: unknown backend {self.name!r} (known: {', '.join(BACKENDS.names())})")
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        require(self, queue_size={"ge": 1}, segment_link_candidates={"ge": 1})
        for section in (self.keyframe, self.graph, self.loop_closure, self.global_alignment):
            section.validate()

    @property
    def loops_enabled(self) -> bool:
        """Loop closure on (explicit setting, else the preset)."""
        if self.loop_closure.enabled is not None:
            return self.loop_closure.enabled
        return self.preset in ("loops", "full")

    @property
    def alignment_enabled(self) -> bool:
        """Global alignment on (explicit setting, else the preset)."""
        if self.global_alignment.enabled is not None:
            return self.global_alignment.enabled
        return self.preset == "full"

    def use_sim3(self, metric: bool) -> bool:
        """Similarity3 nodes (True) or Pose3 nodes (False) for a frontend that is / is not metric."""
        if self.graph.type == "auto":
            return not metric
        return self.graph.type == "sim3"

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str = "backend") -> "BackendConfig":
        """Build from a nested mapping (e.g. the parsed ``backend:`` YAML section).

        Raises:
            ConfigError: unknown key, wrong type or invalid value, naming the dotted key.
        """
        from slam.config_loader import build

        return build(cls, data or {}, {"backend": source}, "backend.")
