"""The backend's heavy work, run by the worker: graph updates, segment links, loop closure, global alignment.

The engine owns the pose graph and the keyframes. It publishes its latest keyframe poses as an immutable
``(version, {kf_id: T_wk})`` tuple that the per-frame path reads without locking. Poses are Sim(3)
matrices ``[[s R, t], [0, 1]]`` (``s = 1`` with Pose3 nodes).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from slam import geometry
from backends.config import BackendConfig
from slam.packed_frame import pack_frame
from slam.pointmaps import median_depth
from backends.pose_graph import Edge, PoseGraph
from slam.types import Keyframe, LoopEdge, PairEstimator

if TYPE_CHECKING:
    from backends.global_alignment import AlignmentResult


#: pose confidences are clipped to this before dividing the odometry noise (at most 20x the nominal sigma)
MIN_POSE_CONFIDENCE = 0.05
#: the alignment may fit the loop and segment-link measurements worse than the pose graph by at most this
#: much RMS whitened residual (sigmas; a tenth of a sigma is far below what a wrong alignment does), unless
#: it still fits them within their noise model (see :meth:`BackendEngine.run_global_alignment`)
LOOP_RESIDUAL_SLACK = 0.1


@dataclass
class KeyframeJob:
    """A new keyframe for the engine.

    Attributes:
        keyframe: the keyframe (its ``pose`` is the per-frame path's provisional guess).
        prev_id: previous keyframe of the same frontend segment, or None (first keyframe / new segment).
        odometry: 4x4 ``T_prev,kf`` from the frontend's poses (frontend units) when ``prev_id`` is set.
        confidence: lowest frontend pose confidence among the frames from the previous keyframe (excluded)
            to this one (included); the odometry edge's noise is divided by it.
    """

    keyframe: Keyframe
    prev_id: int | None = None
    odometry: np.ndarray | None = None
    confidence: float = 1.0


class BackendEngine:
    """Graph, loops and alignment for a stream of keyframes (not thread-safe: one worker calls it)."""

    def __init__(self, cfg: BackendConfig, frontend: PairEstimator, use_sim3: bool):
        self.cfg = cfg
        self.frontend = frontend
        self.use_sim3 = use_sim3
        self.graph = PoseGraph(cfg.graph, use_sim3)
        self.keyframes: dict[int, Keyframe] = {}
        self.depth: dict[int, float] = {}  # median scene depth per keyframe, frontend units
        self.loop_records: list[dict] = []
        self.accepted: list[LoopEdge] = []
        self.timings: dict[str, list[float]] = {"graph_ms": [], "retrieval_ms": [], "verify_ms": [],
                                                "alignment_ms": [], "segment_link_ms": []}
        self.counters = {"segment_links": 0, "segment_link_failures": 0, "alignment_runs": 0,
                         "edges_rejected_in_final": 0, "alignment_rejected": 0}
        self.published: tuple[int, dict[int, np.ndarray]] = (0, {})
        self._pending_loop_checks: deque[int] = deque()
        self._alignment_due = False
        self._loops = None
        if cfg.loops_enabled:
            from backends.loop_closure import LoopCloser

            self._loops = LoopCloser(cfg.loop_closure, cfg.keyframe, frontend, use_sim3)

    # ------------------------------------------------------------------ jobs
    def handle(self, job: KeyframeJob) -> None:
        """Add a keyframe: node, odometry or segment-link edge, iSAM2 update; queue its loop check."""
        kf = job.keyframe
        if self.cfg.keyframe.pack_frame and kf.frame is not None:  # off the per-frame path (worker thread)
            kf.frame = pack_frame(kf.frame)
        t0 = time.perf_counter()
        self.keyframes[kf.id] = kf
        self.depth[kf.id] = median_depth(kf.points, kf.confidence, self.cfg.keyframe.min_confidence)
        if job.prev_id is not None and job.odometry is not None:
            self.graph.add_node(kf.id, self.graph.pose(job.prev_id) @ job.odometry)
            sigmas = self._odometry_sigmas(job.prev_id) / max(float(job.confidence), MIN_POSE_CONFIDENCE)
            self.graph.add_edge(Edge(job.prev_id, kf.id, job.odometry, sigmas, info={"confidence": job.confidence}))
        elif len(self.graph) == 0:
            self.graph.add_node(kf.id, geometry.rigid(kf.frontend_pose))
        else:
            self._link_segment(kf, self.graph.poses())
        self.graph.update()
        self.timings["graph_ms"].append(1e3 * (time.perf_counter() - t0))
        if self._loops is not None:
            self._loops.add(kf)
            self._pending_loop_checks.append(kf.id)
        every = self.cfg.global_alignment.every_k
        if self.cfg.alignment_enabled and every and len(self.keyframes) % every == 0:
            self._alignment_due = True
        self._publish()

    def idle(self) -> bool:
        """Do one unit of deferred work (a loop check, else a due alignment); True if more may remain."""
        if self._pending_loop_checks:
            self._check_loops(self._pending_loop_checks.popleft())
            return True
        if self._alignment_due:
            self._alignment_due = False
            self.run_global_alignment()
            return True
        return False

    def finalize(self) -> None:
        """Finish deferred work, batch (GNC) re-solve, final global alignment."""
        while self.idle():
            pass
        if len(self.keyframes) == 0:
            return
        t0 = time.perf_counter()
        rejected = self.graph.optimize_batch(self.cfg.graph.final, self.cfg.graph.max_residual)
        for edge in rejected:
            self.counters["edges_rejected_in_final"] += 1
            why = (f"inconsistent with the graph (residual {edge.info['residual']:.1f} sigma)"
                   if "residual" in edge.info else f"rejected by {edge.info.get('rejected_by')}")
            for rec in self.loop_records:
                if rec.get("edge_id") == id(edge):
                    rec["accepted"] = False
                    rec["reason"] = f"{why} in the final optimisation"
            self.accepted = [lp for lp in self.accepted if (lp.kf_a, lp.kf_b) != (edge.a, edge.b)]
        self.timings["graph_ms"].append(1e3 * (time.perf_counter() - t0))
        if self.cfg.alignment_enabled:
            self.run_global_alignment()
        self._publish()

    # ------------------------------------------------------------------ pieces
    def _odometry_sigmas(self, kf_id: int) -> np.ndarray:
        g = self.cfg.graph
        return self.graph.sigmas(g.odometry_sigma_rot_deg, g.odometry_sigma_trans * self.depth[kf_id],
                                 g.odometry_sigma_scale)

    def _loop_sigmas(self, kf_id: int, confidence: float) -> np.ndarray:
        g = self.cfg.graph
        c = max(float(confidence), 0.05)
        return self.graph.sigmas(g.loop_sigma_rot_deg / c, g.loop_sigma_trans * self.depth[kf_id] / c,
                                 g.loop_sigma_scale / c)

    def _link_segment(self, kf: Keyframe, poses: dict[int, np.ndarray]) -> None:
        """Connect the first keyframe of a new frontend segment to recent keyframes of earlier segments."""
        t0 = time.perf_counter()
        recent = [k for k in sorted(self.keyframes, reverse=True) if self.keyframes[k].segment != kf.segment]
        recent = recent[: self.cfg.segment_link_candidates]
        best = None
        if self._loops is not None or self.cfg.segment_link_candidates:
            from backends.loop_closure import verify_pair

            for cand in recent:
                res = verify_pair(self.frontend, self.keyframes[cand], kf, self.cfg.loop_closure,
                                  self.cfg.keyframe, self.use_sim3)
                if res.accepted and (best is None or res.score > best[1].score):
                    best = (cand, res)
        last = recent[0]
        if best is not None:
            cand, res = best
            self.graph.add_node(kf.id, poses[cand] @ res.T_ab)
            self.graph.add_edge(Edge(cand, kf.id, res.T_ab, self._loop_sigmas(cand, res.confidence),
                                     kind="segment", robust=True, info={"inlier_ratio": res.inlier_ratio}))
            self.counters["segment_links"] += 1
        else:
            # no usable pair estimate: a weak "camera did not jump" prior keeps the graph connected;
            # loop closures can correct it later (the two segments' worlds are not assumed to coincide)
            self.graph.add_node(kf.id, poses[last])
            sig = self.graph.sigmas(30.0, 1.0 * self.depth[last], 0.5)
            self.graph.add_edge(Edge(last, kf.id, np.eye(4), sig, kind="prior_link"))
            self.counters["segment_link_failures"] += 1
        self.timings["segment_link_ms"].append(1e3 * (time.perf_counter() - t0))

    def _check_loops(self, kf_id: int) -> None:
        kf = self.keyframes[kf_id]
        t0 = time.perf_counter()
        max_id = kf_id - self.cfg.loop_closure.recent_window
        candidates = self._loops.retrieve(kf, max_id)
        self.timings["retrieval_ms"].append(1e3 * (time.perf_counter() - t0))
        n_accepted = 0
        pair_budget = self.cfg.loop_closure.max_pair_estimates
        oldest = None
        for cand_id, score in candidates:
            rec: dict[str, Any] = {"kf_a": int(cand_id), "kf_b": int(kf_id), "score": round(float(score), 4)}
            if n_accepted >= self.cfg.loop_closure.max_loops_per_keyframe:
                rec.update(accepted=False, reason="enough loops for this keyframe")
                self.loop_records.append(rec)
                continue
            t1 = time.perf_counter()
            prior = geometry.relative_pose(self.graph.pose(cand_id), self.graph.pose(kf_id))
            res = self._loops.verify(self.keyframes[cand_id], kf, prior, allow_pair=pair_budget > 0)
            pair_budget -= int(bool(res.info.get("pair_called")))
            self.timings["verify_ms"].append(1e3 * (time.perf_counter() - t1))
            rec.update(accepted=res.accepted, reason=res.reason, inlier_ratio=round(res.inlier_ratio, 4),
                       confidence=round(res.confidence, 4), hypothesis=res.info.get("hypothesis"),
                       pair_called=bool(res.info.get("pair_called")))
            for key in ("correction", "correction_deg", "dense", "dense_correction", "dense_correction_deg",
                        "visible_fraction", "observability"):
                if key in res.info:
                    rec[key] = res.info[key]
            if res.accepted:
                edge = Edge(cand_id, kf_id, res.T_ab, self._loop_sigmas(cand_id, res.confidence),
                            kind="loop", robust=True, info={"score": float(score)})
                self.add_loop_edge(edge)
                rec["edge_id"] = id(edge)
                n_accepted += 1
                oldest = cand_id if oldest is None else min(oldest, cand_id)
            self.loop_records.append(rec)
        if oldest is not None:
            t1 = time.perf_counter()
            self.graph.update(extra_iterations=3, read_from=oldest)
            self.timings["graph_ms"].append(1e3 * (time.perf_counter() - t1))
            self._publish()

    def add_loop_edge(self, edge: Edge) -> None:
        """Add a loop edge to the graph (takes effect at the next graph update)."""
        self.graph.add_edge(edge)
        self.accepted.append(LoopEdge(edge.a, edge.b, float(edge.info.get("score", 0.0))))

    def run_global_alignment(self) -> None:
        """Refine keyframe poses by point alignment along the graph's edges, then re-seed the graph.

        With ``global_alignment.safeguard`` the result is kept only when it lowers the held-out (short-range
        and far covisible) pairs' point-to-plane error, fits the loop and segment-link measurements no worse
        than the pose graph (RMS whitened residual, up to ``LOOP_RESIDUAL_SLACK``; with an SE(3) graph, fitting
        them within their noise model, RMS at most sqrt(6), is enough), and breaks no odometry edge
        (:meth:`_odometry_breaks`: violated by more than ``max_odometry_residual`` sigmas while its points do
        not agree better; see :mod:`backends.global_alignment`); otherwise the pose-graph solution stays.
        """
        from backends.global_alignment import align_keyframes

        t0 = time.perf_counter()
        ga = self.cfg.global_alignment
        res = align_keyframes(self.keyframes, self.graph.poses(), self.graph.edges, ga,
                              self.cfg.keyframe.min_confidence, self.use_sim3 and ga.solve_scale)
        worst, breaks = self._odometry_breaks(res)
        res.stats["worst_odometry_residual"] = round(worst, 3)
        res.stats["odometry_breaks"] = breaks
        res.stats["loop_residual_before"] = round(self._loop_residual(self.graph.poses()), 4)
        res.stats["loop_residual_after"] = round(self._loop_residual(res.poses), 4)
        res.stats["odometry_residual_before"] = round(self._loop_residual(self.graph.poses(), ("odometry",)), 4)
        res.stats["odometry_residual_after"] = round(self._loop_residual(res.poses, ("odometry",)), 4)
        # SE(3): loops and the alignment observe the same geometry, and a loop measurement with honest sigmas
        # has an expected squared whitened residual of its dimension, so fitting loops within their noise is
        # enough. Sim(3): loops and segment links carry the only long-range scale information (the pair
        # estimates' depth ratios), which point alignment cannot observe: they must be fitted no worse.
        bound = res.stats["loop_residual_before"] + LOOP_RESIDUAL_SLACK
        if not self.use_sim3:
            bound = max(bound, float(np.sqrt(self.graph.dim)))
        loops_ok = res.stats["loop_residual_after"] <= bound
        accepted = not ga.safeguard or (res.improved and loops_ok and not breaks)
        res.stats["accepted"] = accepted
        if accepted:
            self.graph.rebuild(res.poses, res.edges)
        else:
            self.counters["alignment_rejected"] += 1
        self.counters["alignment_runs"] += 1
        self.last_alignment = res.stats
        self.timings["alignment_ms"].append(1e3 * (time.perf_counter() - t0))
        self._publish()

    def _odometry_breaks(self, res: "AlignmentResult") -> tuple[float, list[list[int]]]:
        """(largest whitened residual of an odometry edge's original measurement at the aligned poses, in
        sigmas; the edges ``[a, b]`` the alignment breaks).

        An edge is broken when its measurement is violated by more than ``max_odometry_residual`` sigmas
        and the two keyframes' points do not agree better for it (:attr:`AlignmentResult.edge_consistency`):
        a pose moved along a direction the geometry leaves free. A violated edge whose points agree better
        was a wrong odometry measurement that the alignment corrected.
        """
        from dataclasses import replace

        limit = self.cfg.global_alignment.max_odometry_residual
        worst, breaks = 0.0, []
        for e in self.graph.edges:
            if e.kind != "odometry":
                continue
            r = self.graph.whitened_residual(replace(e, T_ab=e.info.get("measured", e.T_ab)), res.poses)
            worst = max(worst, r)
            before, after = res.edge_consistency.get((e.a, e.b), (float("nan"), float("nan")))
            if r > limit and not after < before:
                breaks.append([int(e.a), int(e.b)])
        return worst, breaks

    def _loop_residual(self, poses: dict[int, np.ndarray], kinds: tuple[str, ...] = ("loop", "segment")) -> float:
        """RMS whitened residual (sigmas) of the original measurements of the graph's edges of ``kinds`` at
        ``poses`` (0 when there are none)."""
        from dataclasses import replace

        res = [self.graph.whitened_residual(replace(e, T_ab=e.info.get("measured", e.T_ab)), poses)
               for e in self.graph.edges if e.kind in kinds]
        return float(np.sqrt(np.mean(np.square(res)))) if res else 0.0

    def _publish(self) -> None:
        self.published = (self.published[0] + 1, self.graph.poses())
