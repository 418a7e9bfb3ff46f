"""The per-frame SLAM loop: dataset -> frontend -> backend -> sinks, with crash-safe outputs.

Outputs in ``cfg.output.dir``: ``run.yaml`` (first), ``trajectory.tum`` (every frame; rewritten every
``output.flush_every`` frames and at the end), ``trajectory.kitti`` (KITTI input or when asked),
``keyframes.tum`` and ``loops.json`` (backend), ``metrics.json`` (always; with ATE/RPE when ground truth
exists), plus what the sinks write (``map.ply``, ``mesh.ply``, ``run.rrd``). A Ctrl-C or an error in the
middle still writes all of these for the frames processed so far.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slam.config import RunConfig, write_run_yaml
from slam.sinks import FrameEvent, RunInfo, Sink
from slam.trajectory import Trajectory

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """Summary of a finished (or interrupted) run."""

    out_dir: Path
    n_frames: int
    metrics: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False


class _FpsMeter:
    """Exponentially smoothed frames per second of the per-frame path."""

    def __init__(self, alpha: float = 0.1):
        self.alpha = alpha
        self.fps = 0.0
        self._last: float | None = None

    def tick(self) -> float:
        now = time.perf_counter()
        if self._last is not None:
            inst = 1.0 / max(now - self._last, 1e-9)
            self.fps = inst if self.fps == 0.0 else (1 - self.alpha) * self.fps + self.alpha * inst
        self._last = now
        return self.fps


def _notify(sinks: list[Sink], method: str, *args: Any) -> None:
    """Call a hook on every sink; a failing sink is reported and dropped, never stops the run."""
    for sink in list(sinks):
        try:
            getattr(sink, method)(*args)
        except Exception as exc:  # noqa: BLE001 - a sink must never stop SLAM
            log.warning("sink %s failed in %s (%s); disabling it", type(sink).__name__, method, exc)
            sinks.remove(sink)
            try:
                sink.close()
            except Exception:  # noqa: BLE001
                pass


class Pipeline:
    """Runs one configuration end to end. Use :meth:`run`."""

    def __init__(self, cfg: RunConfig, progress: bool = True):
        self.cfg = cfg
        self.progress = progress
        self.out_dir = Path(cfg.output.dir)
        self.timestamps: list[float] = []
        self.backend = None
        self.sinks: list[Sink] = []
        self.fps = _FpsMeter()

    # -- outputs ---------------------------------------------------------------------------------------------
    def _trajectory(self) -> Trajectory:
        n = len(self.timestamps)
        poses = self.backend.frame_poses()[:n] if self.backend is not None else np.zeros((0, 4, 4))
        return Trajectory(np.asarray(self.timestamps[: len(poses)], dtype=np.float64), np.asarray(poses))

    def _write_trajectories(self, write_kitti: bool) -> Trajectory:
        from slam.trajectory import write_kitti_trajectory, write_tum_trajectory

        traj = self._trajectory()
        write_tum_trajectory(self.out_dir / "trajectory.tum", traj)
        if write_kitti:
            write_kitti_trajectory(self.out_dir / "trajectory.kitti", traj)
        return traj

    # -- main loop -------------------------------------------------------------------------------------------
    def run(self) -> RunResult:
        import frontends
        from backends import SlamBackend
        from mapping import build_sinks
        from slam.datasets import open_dataset

        cfg = self.cfg
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_run_yaml(cfg, self.out_dir / "run.yaml")

        dataset = open_dataset(cfg.dataset)
        n_total = len(dataset)
        gt = dataset.ground_truth()
        write_kitti = cfg.output.kitti if cfg.output.kitti is not None else dataset.is_kitti
        frontend = frontends.create(cfg.frontend.name, cfg.frontend.options())
        self.sinks = build_sinks(cfg.mapping, cfg.viz, self.out_dir)

        interrupted = False
        metrics: dict[str, Any] = {}
        started = False
        n_keyframes = 0
        t0 = time.perf_counter()
        bar = _progress_bar(n_total, cfg.frontend.name) if self.progress else None
        try:
            for frame in dataset:
                output = frontend.step(frame)
                if self.backend is None:
                    self.backend = SlamBackend(cfg.backend, frontend, metric=output.metric)
                if not started:
                    info = RunInfo(out_dir=str(self.out_dir), n_frames=n_total, frontend=cfg.frontend.name,
                                   metric=output.metric, gt_poses=None if gt is None else gt.poses,
                                   timestamps=None if gt is None else gt.timestamps)
                    _notify(self.sinks, "start", info)
                    started = True
                result = self.backend.process(frame, output)
                self.timestamps.append(frame.timestamp)
                fps = self.fps.tick()
                if result.keyframe is not None:
                    n_keyframes += 1
                event = FrameEvent(frame=frame, output=output, pose=result.pose,
                                   keyframe_id=None if result.keyframe is None else result.keyframe.id, fps=fps,
                                   metrics={"fps": fps, "keyframes": float(n_keyframes)})
                _notify(self.sinks, "on_frame", event)
                if self.backend.poll():
                    _notify(self.sinks, "on_keyframes", self.backend.keyframes(), self.backend.loops())
                if cfg.output.flush_every and len(self.timestamps) % cfg.output.flush_every == 0:
                    self._write_trajectories(write_kitti)
                if bar is not None:
                    bar.update(1)
        except KeyboardInterrupt:
            interrupted = True
            log.warning("interrupted: writing what was computed for %d frames", len(self.timestamps))
        finally:
            if bar is not None:
                bar.close()
            elapsed = time.perf_counter() - t0
            try:
                metrics = self._finish(gt, write_kitti, elapsed, interrupted)
            finally:
                _notify(self.sinks, "close")
                if self.backend is not None:
                    self.backend.close()
                frontend.close()
        return RunResult(out_dir=self.out_dir, n_frames=len(self.timestamps), metrics=metrics,
                         interrupted=interrupted)

    def _finish(self, gt: Trajectory | None, write_kitti: bool, elapsed: float, interrupted: bool) -> dict:
        """Final optimisation, trajectories, metrics and sink notifications (also on interrupt/error)."""
        from slam.evaluation import evaluate

        n = len(self.timestamps)
        metrics: dict[str, Any] = {"frames": n, "seconds": round(elapsed, 3),
                                   "frames_per_second": round(n / elapsed, 3) if elapsed > 0 else None,
                                   "interrupted": interrupted, "frontend": self.cfg.frontend.name}
        if self.backend is None or n == 0:
            (self.out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
            return metrics
        self.backend.finalize()
        _notify(self.sinks, "on_keyframes", self.backend.keyframes(), self.backend.loops())
        traj = self._write_trajectories(write_kitti)
        self.backend.write_outputs(self.out_dir)
        metrics["backend"] = self.backend.metrics()
        if gt is not None and n >= 3:
            gt_part = Trajectory(gt.timestamps[:n], gt.poses[:n])
            try:
                metrics.update(evaluate(traj, gt_part, kitti=write_kitti))
            except Exception as exc:  # noqa: BLE001 - metrics must not lose the trajectory
                log.warning("evaluation failed: %s", exc)
                metrics["evaluation_error"] = str(exc)
        (self.out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=_json_default))
        _notify(self.sinks, "finish", traj.timestamps, traj.poses, metrics)
        return metrics


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _progress_bar(total: int, name: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=f"slam[{name}]", unit="frame", dynamic_ncols=True, leave=True)


def run(cfg: RunConfig, progress: bool = True) -> RunResult:
    """Run SLAM with ``cfg``; see :class:`Pipeline`."""
    return Pipeline(cfg, progress=progress).run()
