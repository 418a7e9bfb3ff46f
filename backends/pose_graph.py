"""Keyframe pose graph on GTSAM: Similarity3 (or Pose3) nodes, between factors, iSAM2, robust loops, GNC.

Nodes are keyframe poses ``T_wk`` (4x4 ``[[s R, t], [0, 1]]``; ``s = 1`` for Pose3). An edge ``(a, b)``
measures ``T_ab = T_wa^-1 T_wb``. Noise sigmas are given in GTSAM's tangent order: rotation (rad, 3),
translation (units of node ``a``, 3) and, for Similarity3, log-scale (1). Loop edges get a robust noise
model (Cauchy/Huber). Every edge is also kept as a Python record so that the graph can be rebuilt with new
measurements (global alignment) or re-solved in batch (Levenberg-Marquardt or GNC).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gtsam
import numpy as np

from backends import sim3
from backends.config import GraphConfig

#: edge kinds that are trusted by GNC (never rejected)
TRUSTED_KINDS = ("odometry", "prior_link", "alignment")


@dataclass
class Edge:
    """A relative-pose measurement between two keyframes.

    Attributes:
        a, b: keyframe ids.
        T_ab: 4x4 Sim(3) measurement of ``T_wa^-1 T_wb``.
        sigmas: noise sigmas in tangent order (6 for Pose3, 7 for Similarity3).
        kind: 'odometry', 'loop', 'segment' (pair estimate across a frontend reset), 'prior_link' (weak
            motion prior when a segment could not be linked) or 'alignment' (from global alignment).
        robust: use the robust kernel.
        info: diagnostics (e.g. loop score).
    """

    a: int
    b: int
    T_ab: np.ndarray
    sigmas: np.ndarray
    kind: str = "odometry"
    robust: bool = False
    info: dict = field(default_factory=dict)


def _key(kf_id: int) -> int:
    return gtsam.symbol("x", kf_id)


class PoseGraph:
    """Incremental keyframe pose graph (iSAM2) with batch and GNC re-solves."""

    def __init__(self, cfg: GraphConfig, use_sim3: bool):
        self.cfg = cfg
        self.sim3 = use_sim3
        self.dim = 7 if use_sim3 else 6
        self.edges: list[Edge] = []
        self._prior_id: int | None = None
        self._prior_pose: np.ndarray | None = None
        self._estimate: dict[int, np.ndarray] = {}
        self._new_factors = gtsam.NonlinearFactorGraph()
        self._new_values = gtsam.Values()
        self._isam = self._make_isam()

    # ------------------------------------------------------------------ building
    def _make_isam(self) -> gtsam.ISAM2:
        params = gtsam.ISAM2Params()
        params.setRelinearizeThreshold(self.cfg.relinearize_threshold)
        params.relinearizeSkip = self.cfg.relinearize_skip
        params.enablePartialRelinearizationCheck = self.cfg.partial_relinearization_check
        return gtsam.ISAM2(params)

    def __len__(self) -> int:
        return len(self._estimate)

    def add_node(self, kf_id: int, T_init: np.ndarray) -> None:
        """Add keyframe ``kf_id`` with initial pose ``T_init``; the first node gets a tight prior."""
        if kf_id in self._estimate:
            raise ValueError(f"keyframe {kf_id} is already in the graph")
        self._estimate[kf_id] = np.asarray(T_init, dtype=np.float64).copy()
        self._new_values.insert(_key(kf_id), sim3.to_gtsam(T_init, self.sim3))
        if self._prior_id is None:
            self._prior_id, self._prior_pose = kf_id, self._estimate[kf_id].copy()
            self._new_factors.add(self._prior_factor())

    def add_edge(self, edge: Edge) -> None:
        """Queue a between factor; it takes effect at the next :meth:`update`."""
        if len(edge.sigmas) != self.dim:
            raise ValueError(f"edge sigmas must have {self.dim} entries, got {len(edge.sigmas)}")
        self.edges.append(edge)
        self._new_factors.add(self._between_factor(edge, robust=edge.robust))

    def sigmas(self, rot_deg: float, trans: float, scale: float) -> np.ndarray:
        """Tangent-order sigma vector for this graph's node type (translation in node-a units)."""
        rot = np.radians(rot_deg)
        s = [rot, rot, rot, trans, trans, trans]
        return np.array(s + [scale] if self.sim3 else s, dtype=np.float64)

    def _prior_factor(self):
        noise = gtsam.noiseModel.Isotropic.Sigma(self.dim, 1e-6)
        value = sim3.to_gtsam(self._prior_pose, self.sim3)
        if self.sim3:
            return gtsam.PriorFactorSimilarity3(_key(self._prior_id), value, noise)
        return gtsam.PriorFactorPose3(_key(self._prior_id), value, noise)

    def _between_factor(self, edge: Edge, robust: bool):
        noise = gtsam.noiseModel.Diagonal.Sigmas(np.asarray(edge.sigmas, dtype=np.float64))
        if robust and self.cfg.robust != "none":
            est = gtsam.noiseModel.mEstimator
            kernel = (est.Cauchy if self.cfg.robust == "cauchy" else est.Huber).Create(self.cfg.robust_k)
            noise = gtsam.noiseModel.Robust.Create(kernel, noise)
        meas = sim3.to_gtsam(edge.T_ab, self.sim3)
        cls = gtsam.BetweenFactorSimilarity3 if self.sim3 else gtsam.BetweenFactorPose3
        return cls(_key(edge.a), _key(edge.b), meas, noise)

    # ------------------------------------------------------------------ solving
    def update(self, extra_iterations: int = 0, read_from: int | None = None) -> None:
        """Run one iSAM2 update with the queued nodes/factors (plus ``extra_iterations`` re-linearisations).

        Reading poses back costs O(number read): by default only the nodes touched by the new factors are
        read (an odometry step barely moves older nodes); ``read_from`` reads every node with id >= it
        (after a loop edge: its older end), ``read_from=-1`` reads all.
        """
        if self._new_factors.size() == 0 and self._new_values.size() == 0:
            return
        touched = {gtsam.Symbol(k).index() for i in range(self._new_factors.size())
                   for k in self._new_factors.at(i).keys()}
        self._isam.update(self._new_factors, self._new_values)
        for _ in range(extra_iterations):
            self._isam.update()
        self._new_factors = gtsam.NonlinearFactorGraph()
        self._new_values = gtsam.Values()
        ids = touched if read_from is None else [k for k in self._estimate if k >= read_from]
        self._read_estimate(None, ids)

    def _read_estimate(self, values: gtsam.Values | None, ids=None) -> None:
        """Copy poses from ``values`` (None: from iSAM2, per key) for ``ids`` (default: all nodes)."""
        ids = list(self._estimate) if ids is None else ids
        for kf_id in ids:
            key = _key(kf_id)
            if values is None:
                value = (self._isam.calculateEstimateSimilarity3(key) if self.sim3
                         else self._isam.calculateEstimatePose3(key))
            elif values.exists(key):
                value = values.atSimilarity3(key) if self.sim3 else values.atPose3(key)
            else:
                continue
            self._estimate[kf_id] = sim3.from_gtsam(value)  # replaced, never mutated: shallow copies are safe

    def pose(self, kf_id: int) -> np.ndarray:
        """Current estimate of one node (4x4, do not modify)."""
        return self._estimate[kf_id]

    def poses(self) -> dict[int, np.ndarray]:
        """Current estimate: keyframe id -> 4x4 ``T_wk`` (shallow copy; the arrays must not be modified)."""
        return dict(self._estimate)

    def _full_graph(self, robust: bool) -> gtsam.NonlinearFactorGraph:
        graph = gtsam.NonlinearFactorGraph()
        graph.add(self._prior_factor())
        for edge in self.edges:
            graph.add(self._between_factor(edge, robust=robust and edge.robust))
        return graph

    def _values(self, poses: dict[int, np.ndarray]) -> gtsam.Values:
        values = gtsam.Values()
        for kf_id, T in poses.items():
            values.insert(_key(kf_id), sim3.to_gtsam(T, self.sim3))
        return values

    def rebuild(self, poses: dict[int, np.ndarray] | None = None, edges: list[Edge] | None = None) -> None:
        """Restart iSAM2 from ``poses`` (default: current estimate) with ``edges`` (default: current edges)."""
        if poses is not None:
            self._estimate.update({k: np.asarray(v, dtype=np.float64).copy() for k, v in poses.items()})
        if edges is not None:
            self.edges = list(edges)
        self._isam = self._make_isam()
        self._new_factors = self._full_graph(robust=True)
        self._new_values = self._values(self._estimate)
        self.update(extra_iterations=2, read_from=-1)

    def whitened_residual(self, edge: Edge, poses: dict[int, np.ndarray] | None = None) -> float:
        """Mahalanobis norm (in sigmas, no robust kernel) of an edge's error at ``poses`` (default: current)."""
        poses = self._estimate if poses is None else poses
        values = self._values({edge.a: poses[edge.a], edge.b: poses[edge.b]})
        return float(np.sqrt(2.0 * self._between_factor(edge, robust=False).error(values)))

    def optimize_batch(self, mode: str = "consistency", max_residual: float = 5.0) -> list[Edge]:
        """Re-solve the whole graph in batch from the current estimate and restart iSAM2 from the result.

        Modes: ``consistency``: least squares; while the non-trusted edge (loop, segment link) with the
        largest whitened residual exceeds ``max_residual``, drop it and re-solve. ``gnc``: GTSAM's GNC
        (truncated least squares, trusted edges as known inliers) drops edges with weight < 0.5.
        ``robust``: Levenberg-Marquardt with the robust kernels. Returns the dropped edges.
        """
        if self._prior_id is None:
            return []
        self.update(read_from=-1)
        rejected: list[Edge] = []
        if mode == "gnc" and any(e.kind not in TRUSTED_KINDS for e in self.edges):
            graph = self._full_graph(robust=False)
            params = gtsam.GncLMParams()
            params.setLossType(gtsam.GncLossType.TLS)
            params.setKnownInliers([0] + [i + 1 for i, e in enumerate(self.edges) if e.kind in TRUSTED_KINDS])
            optimizer = gtsam.GncLMOptimizer(graph, self._values(self._estimate), params)
            optimizer.setInlierCostThresholdsAtProbability(0.99)
            result = optimizer.optimize()
            weights = np.asarray(optimizer.getWeights())
            rejected = [e for i, e in enumerate(self.edges) if weights[i + 1] < 0.5]
            self.edges = [e for i, e in enumerate(self.edges) if weights[i + 1] >= 0.5]
            self._read_estimate(result)
        elif mode == "consistency":
            start = self.poses()
            while True:
                self._estimate.update(start)
                self._read_estimate(self._solve_lm(robust=False))
                residuals = [(self.whitened_residual(e), i) for i, e in enumerate(self.edges)
                             if e.kind not in TRUSTED_KINDS]
                if not residuals or max(residuals)[0] <= max_residual:
                    break
                worst_res, worst = max(residuals)
                edge = self.edges.pop(worst)
                edge.info["residual"] = round(worst_res, 3)
                rejected.append(edge)
        else:
            self._read_estimate(self._solve_lm(robust=True))
        for edge in rejected:
            edge.info["rejected_by"] = mode
        self.rebuild()
        return rejected

    def _solve_lm(self, robust: bool) -> gtsam.Values:
        params = gtsam.LevenbergMarquardtParams()
        params.setMaxIterations(100)
        params.setRelativeErrorTol(1e-8)
        graph = self._full_graph(robust=robust)
        return gtsam.LevenbergMarquardtOptimizer(graph, self._values(self._estimate), params).optimize()
