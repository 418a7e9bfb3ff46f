"""The live Rerun sink: camera, trajectories, map, keyframes, loops and time series of a SLAM run.

Entity tree (see :mod:`mapping.blueprint`), world frame = the backend's world, OpenCV camera axes:

- ``/world``: ``ViewCoordinates.RDF`` (static).
- ``/world/camera``: ``Transform3D`` (``T_wc``) every frame; ``Pinhole`` when ``K``/size change;
  ``image`` (RGB), ``depth`` (sensor depth, or the z of the frontend's pointmap) and ``confidence``
  (turbo colour map) at ``viz.image_scale`` of their size.
- ``/world/trajectory/estimate/<chunk>`` and ``/world/trajectory/groundtruth/<chunk>``: the live path as line
  strips of at most ``viz.trajectory_chunk`` poses; each frame re-logs only its own strip. Ground truth is
  shown anchored at the first frame (``T = T_est,0 @ T_gt,0^-1 @ T_gt,k``).
- ``/world/trajectory/keyframes``: the optimised keyframe path (re-logged after each optimisation);
  ``/world/trajectory/final``: the final per-frame trajectory (once, at the end).
- ``/world/map``: fused points, refreshed at most every ``viz.map_every`` frames when the map changed;
  ``/world/mesh``: the TSDF mesh at the end (when there is one).
- ``/world/keyframes/<id>``: ``Transform3D`` + ``Pinhole`` frustum, re-logged when the pose changes.
- ``/world/loops``: one line segment per accepted loop closure between keyframe centres.
- ``/metrics/<name>``: ``fps``, ``keyframes``, ``loops``, ``ate_live`` (with ground truth: RMSE of the live
  positions so far after SE(3)/Sim(3) alignment, every ``viz.ate_every`` frames, unless the pipeline's
  ``FrameEvent.metrics`` carries it) and the other ``FrameEvent.metrics``; ``/frontend/<name>``: numeric frontend stats (e.g. ``update_weight_mean``) and
  ``confidence_mean``.

Timelines: ``frame`` (sequence = ``Frame.index``) and ``time`` (duration since the first frame, seconds).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import rerun as rr

from mapping import blueprint as paths
from mapping.config import VizConfig
from mapping.keyframe_map import KeyframeMap
from mapping.rerun_connect import Recording, ViewerWatchdog, open_recording
from slam.camera import scale_intrinsics
from slam.geometry import inverse_pose
from slam.sinks import FrameEvent, RunInfo, Sink
from slam.types import Keyframe, LoopEdge

log = logging.getLogger(__name__)

ESTIMATE_COLOR = (255, 140, 0)
GROUNDTRUTH_COLOR = (60, 200, 60)
KEYFRAME_COLOR = (70, 130, 255)
LOOP_COLOR = (255, 40, 40)
MAX_HEAVY_STRIDE = 32


def _guarded(method: Callable) -> Callable:
    """A failing hook logs one warning and turns the sink off; it never raises into the run."""

    @functools.wraps(method)
    def wrapper(self: RerunSink, *args: Any, **kwargs: Any) -> Any:
        if self.rec is None:
            return None
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the viewer must never stop SLAM
            self._disable(f"{method.__name__} failed ({type(exc).__name__}: {exc})")
            return None

    return wrapper


class _ChunkedPath:
    """A growing polyline logged as strips of at most ``chunk`` points under ``root/<index>``."""

    def __init__(self, stream: rr.RecordingStream, root: str, chunk: int, color: tuple[int, int, int]):
        self.stream, self.root, self.chunk, self.color = stream, root, chunk, color
        self.index = 0
        self.points: list[np.ndarray] = []

    def append(self, point: np.ndarray) -> None:
        self.points.append(np.asarray(point, dtype=np.float32))
        self.stream.log(f"{self.root}/{self.index:05d}",
                        rr.LineStrips3D([np.stack(self.points)], colors=[self.color], radii=rr.Radius.ui_points(2.0)))
        if len(self.points) >= self.chunk:  # the next strip starts where this one ends
            self.index += 1
            self.points = [self.points[-1]]


class RerunSink(Sink):
    """Logs a run to Rerun; see the module docstring for what goes where.

    Args:
        cfg: viewer options.
        out_dir: output folder (default place of ``run.rrd``).
        keyframe_map: the map maintained by the map sink, displayed at ``/world/map`` (None = no map).
        mesh_source: returns the TSDF mesh at the end of the run (None = no mesh).

    Attributes:
        rec: the open recording (None when off, or after the sink disabled itself).
        heavy_stride: images/depth/confidence are logged every ``heavy_stride`` frames (adapts to the budget).
        log_ms: wall-clock logging time per frame, milliseconds.
        log_cpu_ms: CPU time of the calling thread spent logging, per frame, milliseconds.
    """

    def __init__(self, cfg: VizConfig, out_dir: str | Path, keyframe_map: KeyframeMap | None = None,
                 mesh_source: Callable[[], Any] | None = None):
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.keyframe_map = keyframe_map
        self.mesh_source = mesh_source
        self.rec: Recording | None = None
        self.watchdog: ViewerWatchdog | None = None
        self.heavy_stride = 1
        self.log_ms: list[float] = []
        self.log_cpu_ms: list[float] = []
        self._opened = False
        self._closed = False
        self._frames = 0
        self._t0: float | None = None
        self._time: tuple[int, float] = (0, 0.0)
        self._pinhole: tuple | None = None
        self._gt_poses: np.ndarray | None = None
        self._gt_anchor: np.ndarray | None = None
        self._estimate: _ChunkedPath | None = None
        self._groundtruth: _ChunkedPath | None = None
        self._map_version = -1
        self._map_frame = -(10**9)
        self._kf_poses: dict[int, np.ndarray] = {}
        self._loops: dict[tuple[int, int], LoopEdge] = {}
        self._window: list[float] = []
        self._ate_pairs: list[tuple[np.ndarray, np.ndarray]] = []
        self._metric = True

    # -- life cycle ----------------------------------------------------------------------------------------
    @property
    def stream(self) -> rr.RecordingStream:
        return self.rec.stream

    def open(self) -> None:
        """Open the recording (done by ``start``; tests may call it directly)."""
        if self._opened:
            return
        self._opened = True
        self.rec = open_recording(self.cfg, self.out_dir, paths.default_blueprint())
        if self.rec is None:
            return
        if self.rec.watch is not None and self.cfg.watchdog_s > 0:
            self.watchdog = ViewerWatchdog(self.rec.watch, self.cfg.watchdog_s)
        s = self.stream
        s.log(paths.WORLD, rr.ViewCoordinates.RDF, static=True)
        self._estimate = _ChunkedPath(s, paths.TRAJ_ESTIMATE, self.cfg.trajectory_chunk, ESTIMATE_COLOR)
        self._groundtruth = _ChunkedPath(s, paths.TRAJ_GROUNDTRUTH, self.cfg.trajectory_chunk, GROUNDTRUTH_COLOR)

    def start(self, info: RunInfo) -> None:
        try:
            self.open()
        except Exception as exc:  # noqa: BLE001 - e.g. an unwritable .rrd path: no viewer, the run goes on
            self._disable(f"could not open the recording ({type(exc).__name__}: {exc})")
            return
        self._metric = bool(info.metric)
        if info.gt_poses is not None:
            self._gt_poses = np.asarray(info.gt_poses, dtype=np.float64)
        if info.timestamps is not None and len(info.timestamps):
            self._t0 = float(info.timestamps[0])

    def _disable(self, reason: str) -> None:
        log.warning("Rerun sink: %s; live logging stops, the run goes on", reason)
        self._shutdown()

    def _shutdown(self) -> None:
        rec, self.rec = self.rec, None
        if self.watchdog is not None:
            self.watchdog.stop()
            self.watchdog = None
        if rec is None:
            return
        try:
            rec.stream.flush(timeout_sec=5.0 if rec.mode == "save" else 1.0)
        except Exception as exc:  # noqa: BLE001
            log.warning("Rerun sink: flush incomplete (%s)", exc)
        try:
            rec.stream.disconnect()
        except Exception as exc:  # noqa: BLE001
            log.warning("Rerun sink: disconnect failed (%s)", exc)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._shutdown()

    # -- per frame -----------------------------------------------------------------------------------------
    def _set_time(self, frame_index: int, seconds: float) -> None:
        self._time = (frame_index, seconds)
        self.stream.set_time("frame", sequence=frame_index)
        self.stream.set_time("time", duration=seconds)

    @_guarded
    def on_frame(self, event: FrameEvent) -> None:
        if self.watchdog is not None and self.watchdog.lost.is_set():
            self._disable(f"the viewer at {self.rec.target} is gone")
            return
        started, started_cpu = time.perf_counter(), time.thread_time()
        frame = event.frame
        if self._t0 is None:
            self._t0 = float(frame.timestamp)
        self._set_time(frame.index, float(frame.timestamp) - self._t0)
        pose = np.asarray(event.pose, dtype=np.float64)
        s = self.stream
        s.log(paths.CAMERA, rr.Transform3D(translation=pose[:3, 3], mat3x3=pose[:3, :3]))
        if self._frames % self.heavy_stride == 0:
            self._log_camera_views(event)
        self._estimate.append(pose[:3, 3])
        self._log_groundtruth(frame.index, frame.gt_pose, pose)
        self._log_scalars(event)
        if "ate_live" not in event.metrics and self.cfg.ate_every and self._frames % self.cfg.ate_every == 0:
            self._log_live_ate()
        if self.keyframe_map is not None and frame.index - self._map_frame >= self.cfg.map_every * self.heavy_stride:
            self._log_map(frame.index)
        self._frames += 1
        self._account((time.perf_counter() - started) * 1000.0, (time.thread_time() - started_cpu) * 1000.0)

    def _account(self, wall_ms: float, cpu_ms: float) -> None:
        """Adapt how often the heavy items are logged so that the mean cost per frame stays in budget.

        The budget is checked against this thread's CPU time, so that time spent waiting for the GIL held by
        other threads (the backend's worker) is not mistaken for logging cost.
        """
        self.log_ms.append(wall_ms)
        self.log_cpu_ms.append(cpu_ms)
        self._window.append(cpu_ms)
        if len(self._window) < max(10, 2 * self.heavy_stride):
            return
        mean = float(np.mean(self._window))
        self._window.clear()
        if mean > self.cfg.budget_ms and self.heavy_stride < MAX_HEAVY_STRIDE:
            self.heavy_stride *= 2
            log.info("Rerun sink: %.1f ms/frame > budget %.1f ms; images every %d frames",
                     mean, self.cfg.budget_ms, self.heavy_stride)
        elif mean < self.cfg.budget_ms / 3 and self.heavy_stride > 1:
            self.heavy_stride //= 2

    def _log_camera_views(self, event: FrameEvent) -> None:
        frame, out = event.frame, event.output
        conf = None if out is None else out.confidence
        if frame.depth is not None and frame.K is not None:
            rgb, depth, K = frame.rgb, frame.depth, frame.K
        elif out is not None:
            h, w = out.points.shape[:2]
            rgb = out.colors if out.colors is not None else cv2.resize(frame.rgb, (w, h), interpolation=cv2.INTER_AREA)
            depth, K = out.points[..., 2], out.K
        else:
            return
        h, w = rgb.shape[:2]
        size = (max(1, round(h * self.cfg.image_scale)), max(1, round(w * self.cfg.image_scale)))
        K_view = scale_intrinsics(K, (h, w), size)
        dsize = (size[1], size[0])
        key = (size, tuple(np.round(K_view, 6).ravel()))
        s = self.stream
        if key != self._pinhole:
            s.log(paths.CAMERA, rr.Pinhole(image_from_camera=K_view, resolution=[size[1], size[0]]))
            self._pinhole = key
        s.log(paths.CAMERA_IMAGE, rr.Image(_resize(rgb, dsize, cv2.INTER_AREA)))
        depth = _resize(np.asarray(depth, dtype=np.float32), dsize, cv2.INTER_NEAREST)
        depth[~(np.isfinite(depth) & (depth > 0))] = 0.0
        s.log(paths.CAMERA_DEPTH, rr.DepthImage(depth, meter=1.0))
        if conf is not None:
            s.log(paths.CAMERA_CONFIDENCE, rr.Image(confidence_colors(_resize(conf, dsize, cv2.INTER_NEAREST))))

    def _log_groundtruth(self, index: int, gt_pose: np.ndarray | None, pose: np.ndarray) -> None:
        if gt_pose is None and self._gt_poses is not None and index < len(self._gt_poses):
            gt_pose = self._gt_poses[index]
        if gt_pose is None or not np.isfinite(gt_pose).all():
            return
        gt_pose = np.asarray(gt_pose, dtype=np.float64)
        if self._gt_anchor is None:
            self._gt_anchor = pose @ inverse_pose(gt_pose)
        self._groundtruth.append((self._gt_anchor @ gt_pose)[:3, 3])
        self._ate_pairs.append((pose[:3, 3].copy(), gt_pose[:3, 3].copy()))

    def _log_live_ate(self) -> None:
        """``/metrics/ate_live``: RMSE of the live positions after SE(3) (metric) or Sim(3) alignment to truth."""
        if len(self._ate_pairs) < 3:
            return
        from evo.core.geometry import GeometryException, umeyama_alignment

        est, gt = (np.stack(v) for v in zip(*self._ate_pairs))
        try:
            rot, trans, scale = umeyama_alignment(est.T, gt.T, with_scale=not self._metric)
        except GeometryException:  # degenerate (e.g. a camera that has not moved yet)
            return
        residual = scale * est @ rot.T + trans - gt
        ate = float(np.sqrt(np.mean(np.sum(residual**2, axis=1))))
        if math.isfinite(ate):
            self.stream.log(f"{paths.METRICS}/ate_live", rr.Scalars([ate]))

    def _log_scalars(self, event: FrameEvent) -> None:
        s = self.stream
        values: dict[str, float] = {"fps": event.fps, "loops": float(len(self._loops)),
                                    "keyframes": float(len(self._kf_poses))}
        values.update({k: v for k, v in event.metrics.items() if _is_number(v)})
        for name, value in values.items():
            if math.isfinite(float(value)):
                s.log(f"{paths.METRICS}/{name}", rr.Scalars([float(value)]))
        out = event.output
        if out is None:
            return
        for name, value in out.stats.items():
            if _is_number(value) and math.isfinite(float(value)):
                s.log(f"{paths.FRONTEND}/{name}", rr.Scalars([float(value)]))
        conf = np.asarray(out.confidence, dtype=np.float32)
        s.log(f"{paths.FRONTEND}/confidence_mean", rr.Scalars([float(np.mean(conf[np.isfinite(conf)]))]))

    def _log_map(self, frame_index: int, force: bool = False) -> None:
        if self.keyframe_map.version == self._map_version and not force:
            return
        points, colors = self.keyframe_map.fused()
        if not len(points):
            return
        if len(points) > self.cfg.map_max_points:
            pick = np.random.default_rng(0).choice(len(points), self.cfg.map_max_points, replace=False)
            points, colors = points[pick], colors[pick]
        self.stream.log(paths.MAP, rr.Points3D(points, colors=colors, radii=rr.Radius.ui_points(1.5)))
        self._map_version = self.keyframe_map.version
        self._map_frame = frame_index

    # -- keyframes / loops ---------------------------------------------------------------------------------
    @_guarded
    def on_keyframes(self, keyframes: Sequence[Keyframe], loops: Sequence[LoopEdge]) -> None:
        self._set_time(*self._time)
        s = self.stream
        changed = False
        for kf in keyframes:
            pose = np.asarray(kf.pose, dtype=np.float64)
            entity = f"{paths.KEYFRAMES}/{kf.id}"
            old = self._kf_poses.get(kf.id)
            if old is None:
                h, w = kf.points.shape[:2]
                s.log(entity, rr.Pinhole(image_from_camera=kf.K, resolution=[w, h], color=KEYFRAME_COLOR,
                                         image_plane_distance=self.cfg.frustum_size))
            if old is None or not np.array_equal(old, pose):
                s.log(entity, rr.Transform3D(translation=pose[:3, 3], mat3x3=pose[:3, :3]))
                self._kf_poses[kf.id] = pose.copy()
                changed = True
        new_loops = False
        for edge in loops:
            if (edge.kf_a, edge.kf_b) not in self._loops:
                self._loops[(edge.kf_a, edge.kf_b)] = edge
                new_loops = True
        if changed and len(self._kf_poses) > 1:
            centres = np.stack([self._kf_poses[k][:3, 3] for k in sorted(self._kf_poses)]).astype(np.float32)
            s.log(paths.TRAJ_KEYFRAMES, rr.LineStrips3D([centres], colors=[KEYFRAME_COLOR],
                                                        radii=rr.Radius.ui_points(1.5)))
        if (changed or new_loops) and self._loops:
            segments = [np.stack([self._kf_poses[a][:3, 3], self._kf_poses[b][:3, 3]]).astype(np.float32)
                        for a, b in self._loops if a in self._kf_poses and b in self._kf_poses]
            if segments:
                s.log(paths.LOOPS, rr.LineStrips3D(segments, colors=[LOOP_COLOR], radii=rr.Radius.ui_points(3.0)))

    # -- end of run ----------------------------------------------------------------------------------------
    @_guarded
    def finish(self, timestamps: np.ndarray, poses: np.ndarray, metrics: dict[str, Any]) -> None:
        self._set_time(*self._time)
        s = self.stream
        poses = np.asarray(poses, dtype=np.float64)
        if len(poses) > 1:
            s.log(paths.TRAJ_FINAL, rr.LineStrips3D([poses[:, :3, 3].astype(np.float32)], colors=[ESTIMATE_COLOR],
                                                    radii=rr.Radius.ui_points(2.0)))
        if self.keyframe_map is not None and len(self.keyframe_map):
            self._log_map(self._time[0], force=True)
        mesh = self.mesh_source() if (self.mesh_source is not None and self.cfg.log_mesh) else None
        if mesh is not None and len(mesh.triangles):
            colors = (np.asarray(mesh.vertex_colors) * 255 + 0.5).astype(np.uint8) if mesh.has_vertex_colors() else None
            s.log(paths.MESH, rr.Mesh3D(vertex_positions=np.asarray(mesh.vertices, dtype=np.float32),
                                        triangle_indices=np.asarray(mesh.triangles, dtype=np.uint32),
                                        vertex_normals=np.asarray(mesh.vertex_normals, dtype=np.float32)
                                        if mesh.has_vertex_normals() else None,
                                        vertex_colors=colors))
        if self.log_ms:
            log.info("Rerun sink: %.2f ms/frame mean logging time over %d frames", self.stats()["mean_ms"],
                     len(self.log_ms))

    def stats(self) -> dict[str, float]:
        """Logging cost so far: frames, mean / median / 95th percentile wall ms per frame, mean CPU ms per frame,
        current image stride."""
        ms = np.asarray(self.log_ms, dtype=np.float64)
        if not len(ms):
            return {"frames": 0}
        return {"frames": len(ms), "mean_ms": float(ms.mean()), "median_ms": float(np.median(ms)),
                "p95_ms": float(np.percentile(ms, 95)), "mean_cpu_ms": float(np.mean(self.log_cpu_ms)),
                "image_stride": self.heavy_stride}


def _resize(image: np.ndarray, dsize: tuple[int, int], interpolation: int) -> np.ndarray:
    """cv2.resize to ``dsize = (width, height)`` into a new array (a copy when the size already matches)."""
    if image.shape[1] == dsize[0] and image.shape[0] == dsize[1]:
        return np.array(image, order="C", copy=True)
    return cv2.resize(np.ascontiguousarray(image), dsize, interpolation=interpolation)


def confidence_colors(confidence: np.ndarray) -> np.ndarray:
    """(h,w) confidence -> (h,w,3) uint8 RGB turbo colours, scaled from 0 to the frame's 99th percentile."""
    conf = np.nan_to_num(np.asarray(confidence, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    top = float(np.percentile(conf[::4, ::4], 99)) if conf.size else 0.0
    grey = np.clip(conf * (255.0 / top), 0, 255).astype(np.uint8) if top > 0 else np.zeros(conf.shape, np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
