"""The Gaussian-splat map sink: tttLRM on the keyframes after the final optimisation (and every K keyframes).

It writes ``<out>/gaussians.ply`` (3DGS layout, world frame of the backend) and, when the Rerun sink is
recording, logs the Gaussian centres (DC colour, radius = mean scale) to ``/world/gaussians``. Keyframe images
come from ``Keyframe.frame`` (full-size RGB and its ``K``) or, when the backend dropped it, from the frame seen in
``on_frame``; without a known ``K`` the keyframe's stored colours and ``Keyframe.K`` are used.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mapping.config import GaussiansConfig
from mapping.gaussians.builder import GaussianMapBuilder, View
from mapping.gaussians.ply import write_gaussian_ply
from mapping.gaussians.sh import C0
from slam.sinks import FrameEvent, Sink
from slam.types import Keyframe, LoopEdge

log = logging.getLogger(__name__)

ENTITY = "/world/gaussians"


class GaussianSink(Sink):
    """Builds and exports the Gaussian map.

    Args:
        cfg: ``mapping.gaussians`` options (the checkpoint is loaded here, so a bad one fails before the run).
        out_dir: run folder.
        keyframe_map: the map sink's keyframe map, for the crop bounds (None = no crop).
        rerun: the Rerun sink, or None.
    """

    def __init__(self, cfg: GaussiansConfig, out_dir: str | Path, keyframe_map: Any = None, rerun: Any = None):
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.keyframe_map = keyframe_map
        self.rerun = rerun
        self.builder = GaussianMapBuilder(cfg)
        self.keyframes: list[Keyframe] = []
        self.gaussians: dict[str, np.ndarray] | None = None
        self._frames: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        self._built_at = 0

    @property
    def path(self) -> Path:
        return self.out_dir / self.cfg.file

    def on_frame(self, event: FrameEvent) -> None:
        if event.keyframe_id is not None:
            self._frames[event.keyframe_id] = (event.frame.rgb, event.frame.K)

    def on_keyframes(self, keyframes: Sequence[Keyframe], loops: Sequence[LoopEdge]) -> None:
        self.keyframes = sorted(keyframes, key=lambda kf: kf.id)
        k = self.cfg.every_k_keyframes
        if k > 0 and len(self.keyframes) - self._built_at >= k:
            self.update()

    def finish(self, timestamps: np.ndarray, poses: np.ndarray, metrics: dict[str, Any]) -> None:
        self.update()

    def update(self) -> Path | None:
        """Rebuild the map from the current keyframes, write the PLY and log to Rerun; returns the file written."""
        views = [self._view(kf) for kf in self.keyframes]
        if not views:
            return None
        self._built_at = len(views)
        self.gaussians = self.builder.build(views, self.bounds() if self.cfg.crop_to_map else None)
        g = self.gaussians
        if not len(g["means"]):
            log.warning("Gaussian map: no Gaussian left after pruning and the map crop (mapping.gaussians.min_opacity,"
                        " keep_ratio, crop_to_map)")
        write_gaussian_ply(self.path, g["means"], g["sh"], g["opacity_logits"], g["log_scales"], g["quats"])
        log.info("wrote %d Gaussians of %d keyframes to %s", len(g["means"]), len(views), self.path)
        self._log_rerun()
        return self.path

    def _view(self, kf: Keyframe) -> View:
        frame = kf.frame
        rgb, K = (frame.rgb, frame.K) if frame is not None else self._frames.get(kf.id, (None, None))
        if rgb is None or K is None:
            rgb, K = kf.colors, kf.K  # the keyframe's own (subsampled) colours and their intrinsics
        return View(kf_id=kf.id, rgb=np.asarray(rgb), K=np.asarray(K, dtype=np.float64),
                    pose=np.asarray(kf.pose, dtype=np.float64))

    def bounds(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Axis-aligned bounds of the keyframe map points and keyframe centres, enlarged by ``map_margin`` times
        their diagonal; None without keyframes."""
        pts = [np.stack([np.asarray(kf.pose)[:3, 3] for kf in self.keyframes])] if self.keyframes else []
        if self.keyframe_map is not None and len(self.keyframe_map):
            pts.append(np.asarray(self.keyframe_map.fused()[0], dtype=np.float64))
        if not pts:
            return None
        allp = np.concatenate(pts)
        lo, hi = allp.min(axis=0), allp.max(axis=0)
        pad = self.cfg.map_margin * float(np.linalg.norm(hi - lo))
        return lo - pad, hi + pad

    def _log_rerun(self) -> None:
        rec = getattr(self.rerun, "rec", None)
        if rec is None or self.gaussians is None or self.cfg.rerun_max_points == 0:
            return
        import rerun as rr

        g = self.gaussians
        order = np.argsort(-g["opacity_logits"], kind="stable")[: self.cfg.rerun_max_points]
        colors = np.clip(0.5 + C0 * g["sh"][order, 0, :], 0.0, 1.0)
        radii = np.exp(g["log_scales"][order].mean(axis=1))
        rec.stream.log(ENTITY, rr.Points3D(g["means"][order].astype(np.float32),
                                           colors=(colors * 255 + 0.5).astype(np.uint8),
                                           radii=radii.astype(np.float32)))
