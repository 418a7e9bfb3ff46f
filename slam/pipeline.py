"""The per-frame SLAM loop: dataset -> frontend -> backend -> sinks, with crash-safe outputs.

Outputs in ``cfg.output.dir``: ``run.yaml`` (first), ``trajectory.tum`` (every frame; rewritten every
``output.flush_every`` frames and at the end), ``trajectory.kitti`` (KITTI input or when asked),
``keyframes.tum`` and ``loops.json`` (backend), ``metrics.json`` (always; with ATE/RPE when ground truth
exists), plus what the sinks write (``map.ply``, ``mesh.ply``, ``run.rrd``). A Ctrl-C or an error in the
middle still writes all of these for the frames processed so far.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import frontends
from backends import create_backend
from mapping import build_sinks
from slam.config import RunConfig, write_run_yaml
from slam.datasets import open_dataset
from slam.depth_check import DepthCheck, check_frame_size
from slam.errors import DatasetError, SlamError
from slam.evaluation import evaluate
from slam.interrupts import SignalState, interrupt_signals, pause_point
from slam.sinks import FrameEvent, RunInfo, Sink
from slam.atomic import write_text_atomic
from slam.trajectory import Trajectory, write_kitti_trajectory, write_tum_trajectory
from slam.types import Backend

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """Summary of a finished (or interrupted) run."""

    out_dir: Path
    n_frames: int
    metrics: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False
    exit_code: int = 0  #: 0, or 128 + the signal that interrupted the run (130 SIGINT, 143 SIGTERM)


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


def _notify(sinks: list[Sink], method: str, *args: Any, write_errors: list[OSError] | None = None) -> None:
    """Call a hook on every sink; a failing sink is reported and dropped, never stops the run.

    An ``OSError`` naming a file (a failed write: disk full, not writable) is also appended to
    ``write_errors`` so that the run can end with an error once everything else is written.
    """
    for sink in list(sinks):
        try:
            getattr(sink, method)(*args)
        except Exception as exc:  # noqa: BLE001 - a sink must never stop SLAM
            if write_errors is not None and isinstance(exc, OSError) and exc.filename:
                write_errors.append(exc)
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
        self.backend: Backend | None = None
        self.sinks: list[Sink] = []
        self.fps = _FpsMeter()
        self.frames_written = 0  #: frames in the trajectory.tum on disk
        self.write_errors: list[OSError] = []  #: failed writes of the sinks, reported at the end of the run

    # -- outputs ---------------------------------------------------------------------------------------------
    def _trajectory(self) -> Trajectory:
        n = len(self.timestamps)
        poses = self.backend.frame_poses()[:n] if self.backend is not None else np.zeros((0, 4, 4))
        return Trajectory(np.asarray(self.timestamps[: len(poses)], dtype=np.float64), np.asarray(poses))

    def _write_trajectories(self, write_kitti: bool) -> Trajectory:
        traj = self._trajectory()
        write_tum_trajectory(self.out_dir / "trajectory.tum", traj)
        if write_kitti:
            write_kitti_trajectory(self.out_dir / "trajectory.kitti", traj)
        self.frames_written = len(traj)
        return traj

    # -- main loop -------------------------------------------------------------------------------------------
    def run(self) -> RunResult:
        cfg = self.cfg
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_run_yaml(cfg, self.out_dir / "run.yaml")

        dataset = open_dataset(self._dataset_config())
        n_total = len(dataset)
        if n_total == 0:
            raise DatasetError("no frame to process: the sequence is empty or dataset.first/last/stride/max_frames "
                               "select none", cfg.dataset.path)
        gt = dataset.ground_truth()
        write_kitti = cfg.output.kitti if cfg.output.kitti is not None else dataset.is_kitti
        frontend = frontends.create(cfg.frontend.name, cfg.frontend.options())
        self.backend = create_backend(cfg.backend, frontend)
        self.sinks = build_sinks(cfg.mapping, cfg.viz, self.out_dir)
        self.depth_check = DepthCheck(frontend.usable_depth(), cfg.dataset.path, cfg.dataset.depth_scale)

        signals = SignalState()
        interrupted = failed = False
        metrics: dict[str, Any] = {}
        started = False
        n_keyframes = 0
        first_shape: tuple[int, int] | None = None
        t0 = last_flush = time.perf_counter()
        bar = _progress_bar(n_total, cfg.frontend.name) if self.progress else None
        with interrupt_signals(signals):
            try:
                for frame in dataset:
                    first_shape = check_frame_size(frame, first_shape)
                    self.depth_check.check(frame)
                    output = frontend.step(frame)
                    _check_finite(output, frame, cfg.frontend.name)
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
                                       keyframe_id=None if result.keyframe is None else result.keyframe.id,
                                       fps=fps, metrics={"fps": fps, "keyframes": float(n_keyframes)})
                    _notify(self.sinks, "on_frame", event)
                    if self.backend.poll():
                        _notify(self.sinks, "on_keyframes", self.backend.keyframes(), self.backend.loops())
                    now = time.perf_counter()
                    out = cfg.output
                    if ((out.flush_every and len(self.timestamps) % out.flush_every == 0)
                            or (out.flush_seconds and now - last_flush >= out.flush_seconds)):
                        self._write_trajectories(write_kitti)
                        last_flush = now
                    if bar is not None:
                        bar.update(1)
                    pause_point(f"frame:{len(self.timestamps)}")
            except KeyboardInterrupt:
                interrupted = True
                log.warning("interrupted: writing what was computed for %d frames", len(self.timestamps))
            except BaseException:
                failed = True  # the error is reported by the caller; the files are still written below
                raise
            finally:
                if bar is not None:
                    bar.close()
                elapsed = time.perf_counter() - t0
                try:
                    metrics = self._finish(gt, write_kitti, elapsed, interrupted, optimise=not failed)
                    interrupted = interrupted or bool(metrics.get("interrupted"))
                finally:
                    self._guarded("closing the sinks", lambda: _notify(self.sinks, "close",
                                                                        write_errors=self.write_errors))
                    if self.backend is not None:
                        self._guarded("stopping the backend", self.backend.close)
                    self._guarded("closing the frontend", frontend.close)
        if not interrupted:
            self.depth_check.finish()
        if self.write_errors:  # everything else is written; now report the first failed file
            raise self.write_errors[0]
        return RunResult(out_dir=self.out_dir, n_frames=len(self.timestamps), metrics=metrics,
                         interrupted=interrupted, exit_code=signals.exit_code if interrupted else 0)

    def _dataset_config(self):
        """``cfg.dataset``, with stereo partners left unread (``stereo: false``) when the setting is automatic
        (None) and the frontend does not read them (:func:`frontends.reads_stereo_pair`)."""
        data = self.cfg.dataset
        if data.stereo is None and not frontends.reads_stereo_pair(self.cfg.frontend.name,
                                                                    self.cfg.frontend.options()):
            return dataclasses.replace(data, stereo=False)
        return data

    def _guarded(self, what: str, fn, *args: Any) -> bool:
        """Run one finishing step; a Ctrl-C/SIGTERM skips only that step. False when it was skipped."""
        try:
            fn(*args)
            return True
        except KeyboardInterrupt:
            self._interrupted_finish = True
            log.warning("interrupted while %s: skipped; the files written before are kept", what)
            return False

    def _finish(self, gt: Trajectory | None, write_kitti: bool, elapsed: float, interrupted: bool,
                optimise: bool = True) -> dict:
        """Trajectories first, then the final optimisation, then the final files (also on interrupt/error).

        Order: (1) the current (odometry + online graph) trajectory, keyframes and metrics are written;
        (2) the final optimisation runs; (3) the trajectories, keyframes and metrics are replaced by the
        optimised ones; (4) the sinks export their maps. An interrupt skips the step it hits (every write is
        atomic), so the files on disk always hold the best result known so far for every processed frame.
        After an error in the frame loop (``optimise=False``) only step (1) runs.
        """
        self._interrupted_finish = interrupted
        n = len(self.timestamps)
        metrics: dict[str, Any] = {"frames": n, "seconds": round(elapsed, 3),
                                   "frames_per_second": round(n / elapsed, 3) if elapsed > 0 else None,
                                   "interrupted": interrupted, "frontend": self.cfg.frontend.name}
        metrics_path = self.out_dir / "metrics.json"
        if self.backend is None or n == 0:
            write_text_atomic(metrics_path, json.dumps(metrics, indent=2))
            return metrics

        def write_current(stage: str) -> None:
            self._write_trajectories(write_kitti)
            self.backend.write_outputs(self.out_dir)
            metrics["trajectory"] = stage
            metrics["interrupted"] = self._interrupted_finish
            write_text_atomic(metrics_path, json.dumps(metrics, indent=2, default=_json_default))

        # (1) before the final optimisation; a signal here still leaves the flushed files
        self._guarded("writing the trajectory before the final optimisation", write_current, "before final optimisation")
        if not optimise:
            return metrics
        # (2) the final optimisation; if it fails, the files of step (1) stay and the error propagates
        def finalize() -> None:
            pause_point("finalize")
            if self.progress:  # the final optimisation can take minutes on long runs: say what is happening
                print(f"final optimisation of {self.backend.metrics().get('keyframes', 0)} keyframes "
                      "(Ctrl-C skips it; the trajectory before it is already written) ...", file=sys.stderr,
                      flush=True)
            started = time.perf_counter()
            self.backend.finalize()
            if self.progress:
                print(f"final optimisation done in {time.perf_counter() - started:.1f} s", file=sys.stderr,
                      flush=True)

        optimised = self._guarded("running the final optimisation", finalize)
        # (3) the final files
        self._guarded("updating the map sinks", _notify, self.sinks, "on_keyframes", self.backend.keyframes(),
                      self.backend.loops())
        traj = self._trajectory()
        metrics["backend"] = self.backend.metrics()
        if gt is not None and n >= 3:
            gt_part = Trajectory(gt.timestamps[:n], gt.poses[:n])
            try:
                metrics.update(evaluate(traj, gt_part, kitti=write_kitti))
            except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - metrics must not lose the trajectory
                log.warning("evaluation failed: %s", exc or type(exc).__name__)
                metrics["evaluation_error"] = str(exc) or type(exc).__name__
        self._guarded("writing the final trajectory", write_current,
                      "final" if optimised else "final optimisation skipped (interrupted)")
        # (4) map export
        def export() -> None:
            pause_point("export")
            _notify(self.sinks, "finish", traj.timestamps, traj.poses, metrics, write_errors=self.write_errors)

        self._guarded("exporting the map", export)
        if self.frames_written < n:  # repeated signals skipped every trajectory write: one last try
            self._guarded("writing the trajectory", self._write_trajectories, write_kitti)
        if self._interrupted_finish and not metrics["interrupted"]:  # interrupted during the export
            metrics["interrupted"] = True
            self._guarded("writing the metrics", write_text_atomic, metrics_path,
                          json.dumps(metrics, indent=2, default=_json_default))
        return metrics


def _check_finite(output: Any, frame: Any, frontend: str) -> None:
    """Stop with a clear error (instead of a failing SVD later) when a frontend's pose is not finite."""
    if not np.isfinite(np.asarray(output.pose, dtype=np.float64)).all():
        raise SlamError(f"frontend '{frontend}' produced a non-finite (NaN/inf) pose for frame {frame.index}: "
                        "check the checkpoint and the input data", frame.source or None)


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
