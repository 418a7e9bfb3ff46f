"""The backend facade the pipeline talks to: keyframes, pose graph, loops and alignment behind one object.

Per-frame path (:meth:`SlamBackend.process`): keyframe decision, the frame's pose in the backend world
(latest optimised pose of its keyframe composed with the frame's frontend pose relative to that keyframe;
:meth:`frame_poses` later also blends in the next keyframe, see ``keyframe.blend_frames``),
and, for a new keyframe, one job handed to the worker. Everything else (graph updates, segment links,
retrieval, verification, global alignment) runs in the worker thread, or inline when ``cfg.sync``.

Poses returned to callers are rigid camera-to-world ``T_wc`` 4x4. Internally keyframe poses are Sim(3)
(``[[s R, t], [0, 1]]``); in :meth:`keyframes` snapshots the keyframe's scale ``s`` is applied to its
``points`` so that ``pose @ points`` places them in the backend world.

With loop closure and global alignment disabled (``preset: odometry``) this is plain odometry: the frontend's
poses chained through keyframes (frontend segments are still linked by pair estimates).

Determinism: with ``cfg.sync`` every job runs inline in submission order, and Open3D (whose CPU reductions and
RANSAC run on oneTBB threads, in an order that varies from run to run) is limited to one thread from the
backend's creation until :meth:`close`, so that runs give bit-identical trajectories. Without ``sync`` the
worker's timing decides when loops are checked and the graph updated; see ``docs/real_data.md`` for how much
that varies the results.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from slam import geometry
from backends.config import BackendConfig
from backends.engine import BackendEngine, KeyframeJob
from backends.keyframer import Keyframer
from backends.registry import register_backend
from backends.worker import BackendWorker
from slam.atomic import write_text_atomic
from slam.trajectory import Trajectory, write_tum_trajectory
from slam.types import Frame, FrameResult, FrontendOutput, Keyframe, LoopEdge, PairEstimator


@register_backend("graph")
class SlamBackend:
    """Keyframe-based SLAM backend on top of any frontend (see module docstring); a :class:`slam.types.Backend`.

    Args:
        cfg: the ``backend:`` config section.
        frontend: pair estimates for segment links and loop verification.
        metric: whether the frontend's outputs are in metres (SE(3) graph) or up to scale (Sim(3) graph);
            None = taken from the first :class:`~slam.types.FrontendOutput` given to :meth:`process`.
    """

    def __init__(self, cfg: BackendConfig, frontend: PairEstimator, metric: bool | None = None):
        cfg.validate()
        self.cfg = cfg
        self.frontend = frontend
        self._open3d_threads = _limit_open3d_threads(1) if cfg.sync else None
        self.metric = metric
        self.use_sim3: bool | None = None
        self.keyframer = Keyframer(cfg.keyframe)
        self.engine: BackendEngine | None = None
        self.worker: BackendWorker | None = None
        if metric is not None:
            self._start(metric)
        self._kf_of_frame: list[int] = []  # keyframe id per processed frame
        self._rel_of_frame: list[np.ndarray] = []  # 4x4 frontend pose relative to that keyframe
        self._timestamps: list[float] = []
        self._keyframes: list[Keyframe] = []  # as created (provisional poses)
        # kf id -> (previous kf id, 4x4 relative) or (None, absolute pose): the per-frame path's guess until
        # the engine has solved the keyframe
        self._provisional: dict[int, tuple[int | None, np.ndarray]] = {}
        self._last_kf: Keyframe | None = None
        self._pose_confidence = 1.0  # lowest frontend pose confidence since the last keyframe
        self._scaled_points: dict[int, tuple[float, np.ndarray]] = {}  # kf id -> (scale, points * scale)
        self._seen_version = 0
        self._process_ms: list[float] = []
        self._tracking: dict[str, list[int]] = {"failed": [], "recovered": []}  # frame indices, from out.stats
        self._finalized = False

    def _start(self, metric: bool) -> None:
        """Build the graph engine and its worker once the frontend's scale (metric or not) is known."""
        self.metric = metric
        self.use_sim3 = self.cfg.use_sim3(metric)
        self.engine = BackendEngine(self.cfg, self.frontend, self.use_sim3)
        self.worker = BackendWorker(self.engine.handle, self.engine.idle, self.cfg.sync, self.cfg.queue_size)

    # ------------------------------------------------------------------ per-frame path
    def process(self, frame: Frame, out: FrontendOutput) -> FrameResult:
        """Keyframe decision, pose of this frame, enqueue a new keyframe. Cheap; never optimises."""
        if self.engine is None:
            self._start(out.metric)
        t0 = time.perf_counter()
        for key in self._tracking:
            if out.stats.get(f"odometry_{key}"):
                self._tracking[key].append(int(frame.index))
        decision = self.keyframer.decide(out)
        self._pose_confidence = min(self._pose_confidence, float(out.pose_confidence))
        keyframe = None
        if decision.is_keyframe:
            keyframe = self._new_keyframe(frame, out)
            rel = np.eye(4)
        else:
            rel = geometry.relative_pose(self._last_kf.frontend_pose, out.pose)
        self.keyframer.observe(decision, keyframe)
        kf_id = self._last_kf.id
        self._kf_of_frame.append(kf_id)
        self._rel_of_frame.append(rel)
        self._timestamps.append(float(frame.timestamp))
        pose = geometry.rigid(self._keyframe_pose(kf_id) @ rel)
        self._process_ms.append(1e3 * (time.perf_counter() - t0))
        return FrameResult(pose=pose, keyframe=keyframe)

    def _new_keyframe(self, frame: Frame, out: FrontendOutput) -> Keyframe:
        kf_id = len(self._keyframes)
        prev = self._last_kf
        if prev is None:
            prev_id, odom = None, None
            self._provisional[kf_id] = (None, geometry.rigid(out.pose))
        elif prev.segment == out.segment:
            prev_id, odom = prev.id, geometry.relative_pose(prev.frontend_pose, out.pose)
            self._provisional[kf_id] = (prev.id, odom)
        else:  # new frontend segment: linked by the worker; until then assume the camera did not move
            prev_id, odom = None, None
            self._provisional[kf_id] = (prev.id, np.eye(4))
        kf = self.keyframer.make_keyframe(kf_id, frame, out, self._keyframe_pose(kf_id))
        self._keyframes.append(kf)
        self._last_kf = kf
        self.worker.submit(KeyframeJob(kf, prev_id, odom, self._pose_confidence))
        self._pose_confidence = 1.0
        return kf

    def _keyframe_pose(self, kf_id: int, published: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """Latest Sim(3) pose of a keyframe: published by the engine, else chained from the newest
        published ancestor through the per-frame path's relative guesses."""
        published = self.engine.published[1] if published is None else published
        chain = []
        while kf_id not in published:
            anchor, T = self._provisional[kf_id]
            chain.append(T)
            if anchor is None:
                break
            kf_id = anchor
        pose = published[kf_id] if kf_id in published else np.eye(4)
        for T in reversed(chain):
            pose = pose @ T
        return pose

    # ------------------------------------------------------------------ reading results
    def poll(self) -> bool:
        """True when keyframe poses changed (an optimisation finished) since the last call."""
        if self.engine is None:
            return False
        version = self.engine.published[0]
        changed = version != self._seen_version
        self._seen_version = version
        return changed

    def keyframes(self) -> list[Keyframe]:
        """Snapshot of all keyframes with their current optimised rigid poses (points scaled to the world).

        Called after every optimisation; scaled point copies are reused while a keyframe's scale is unchanged
        (iSAM2 moves only the keyframes an update touches).
        """
        if not self._keyframes:
            return []
        published = self.engine.published[1]
        T = np.stack([self._keyframe_pose(kf.id, published) for kf in self._keyframes])
        poses, scales = geometry.rigid(T), np.cbrt(np.linalg.det(T[:, :3, :3]))
        return [dataclasses.replace(kf, pose=pose, points=self._points_at_scale(kf, float(s)))
                for kf, pose, s in zip(self._keyframes, poses, scales)]

    def _points_at_scale(self, kf: Keyframe, s: float) -> np.ndarray:
        if abs(s - 1.0) < 1e-9:
            return kf.points
        cached = self._scaled_points.get(kf.id)
        if cached is None or cached[0] != s:
            cached = (s, kf.points * np.float32(s))
            self._scaled_points[kf.id] = cached
        return cached[1]

    def loops(self) -> list[LoopEdge]:
        """Accepted loop closures."""
        return list(self.engine.accepted) if self.engine is not None else []

    def frame_poses(self) -> np.ndarray:
        """(N, 4, 4) rigid ``T_wc`` of every processed frame, from the latest keyframe poses."""
        n = len(self._kf_of_frame)
        if n == 0:
            return np.zeros((0, 4, 4))
        published = self.engine.published[1]
        kf_poses = np.stack([self._keyframe_pose(k, published) for k in range(len(self._keyframes))])
        kf_of_frame = np.asarray(self._kf_of_frame)
        rel = np.stack(self._rel_of_frame)
        poses = kf_poses[kf_of_frame] @ rel
        if self.cfg.keyframe.blend_frames:
            poses = self._blend_with_next_keyframe(poses, kf_of_frame, rel, kf_poses)
        return geometry.rigid(poses)

    def _blend_with_next_keyframe(self, poses: np.ndarray, kf_of_frame: np.ndarray, rel: np.ndarray,
                                  kf_poses: np.ndarray) -> np.ndarray:
        """Blend each frame's pose via its keyframe k with its pose via keyframe k+1 (same segment), by the
        frame's position between the two (see ``keyframe.blend_frames``)."""
        first = np.searchsorted(kf_of_frame, np.arange(len(kf_poses)))  # position of each keyframe's frame
        nxt = kf_of_frame + 1
        has_next = nxt < len(kf_poses)
        rows = np.flatnonzero(has_next)
        segment = np.array([kf.segment for kf in self._keyframes])
        rows = rows[segment[kf_of_frame[rows]] == segment[kf_of_frame[rows] + 1]]
        if len(rows) == 0:
            return poses
        k = kf_of_frame[rows]
        # pose via k+1: T_w,k+1 (F_k+1^-1 F_k) rel, with F the keyframes' frontend poses
        frontend = np.stack([kf.frontend_pose for kf in self._keyframes])
        links = geometry.inverse_pose(frontend[1:]) @ frontend[:-1]
        via_next = kf_poses[k + 1] @ links[k] @ rel[rows]
        alpha = (rows - first[k]) / (first[k + 1] - first[k])
        out = poses.copy()
        out[rows] = geometry.blend(poses[rows], via_next, alpha)
        return out

    def timestamps(self) -> np.ndarray:
        """(N,) timestamps of the processed frames, seconds."""
        return np.asarray(self._timestamps, dtype=np.float64)

    # ------------------------------------------------------------------ end of run
    def finalize(self) -> None:
        """Drain the worker, then the final optimisation (GNC / batch) and global alignment if enabled."""
        if self.engine is None:
            return
        self.worker.drain()
        if not self._finalized:
            self.engine.finalize()
            self._finalized = True

    def metrics(self) -> dict[str, Any]:
        """JSON-ready backend figures."""
        eng = self.engine
        if eng is None:
            return {"frames": 0, "keyframes": 0}
        recs = eng.loop_records
        out: dict[str, Any] = {
            "graph": "sim3" if self.use_sim3 else "se3",
            "frames": len(self._kf_of_frame),
            "keyframes": len(self._keyframes),
            "loop_candidates": len(recs),
            "loops_accepted": len(eng.accepted),
            "loops_rejected": sum(1 for r in recs if not r["accepted"]),
            "worker_blocked_s": round(self.worker.blocked_s, 4),
            "process_ms_mean": _mean(self._process_ms),
            # frontend tracking failures (frames that kept a motion prediction) and recovered steps
            "tracking_failures": len(self._tracking["failed"]),
            "tracking_recoveries": len(self._tracking["recovered"]),
            "tracking_failed_frames": self._tracking["failed"][:100],
            "tracking_recovered_frames": self._tracking["recovered"][:100],
            **eng.counters,
        }
        for name, values in eng.timings.items():
            out[f"{name}_mean"] = _mean(values)
            out[f"{name}_max"] = round(max(values), 3) if values else 0.0
        if getattr(eng, "last_alignment", None):
            out["alignment"] = eng.last_alignment
        return out

    def write_outputs(self, out_dir: Path) -> None:
        """Write ``keyframes.tum`` and ``loops.json`` into ``out_dir``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        kfs = self.keyframes()
        poses = np.stack([kf.pose for kf in kfs]) if kfs else np.zeros((0, 4, 4))
        write_tum_trajectory(out_dir / "keyframes.tum", Trajectory(np.array([kf.timestamp for kf in kfs]), poses))
        loop_records = self.engine.loop_records if self.engine is not None else []
        records = [{k: v for k, v in r.items() if k != "edge_id"} for r in loop_records]
        for r in records:
            for key in ("kf_a", "kf_b"):
                r[key.replace("kf", "frame")] = int(self._keyframes[r[key]].frame_index)
        doc = {"accepted": [dataclasses.asdict(lp) for lp in self.loops()], "candidates": records}
        write_text_atomic(out_dir / "loops.json", json.dumps(doc, indent=1))

    def close(self) -> None:
        """Stop the worker thread (and give Open3D back its thread count in sync mode)."""
        if self.worker is not None:
            self.worker.close()
        if self._open3d_threads is not None:
            _limit_open3d_threads(self._open3d_threads)
            self._open3d_threads = None


def _limit_open3d_threads(n: int) -> int | None:
    """Set Open3D's CPU thread limit (0 = its automatic default); returns the previous limit, None when
    this Open3D has no such setting."""
    import open3d as o3d

    setter = getattr(o3d.utility, "set_max_threads", None)
    if setter is None:
        return None
    previous = int(o3d.utility.get_max_threads())
    setter(n)
    return previous


def _mean(values: list[float]) -> float:
    return round(float(np.mean(values)), 3) if values else 0.0
