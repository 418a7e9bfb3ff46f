"""The map sink: keeps the keyframe point map (and TSDF) in step with the backend and writes the PLY files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import open3d as o3d

from mapping.config import MappingConfig
from mapping.export import write_mesh, write_point_cloud
from mapping.keyframe_map import KeyframeMap
from mapping.tsdf import TsdfMap
from slam.sinks import FrameEvent, RunInfo, Sink
from slam.types import Keyframe, LoopEdge

log = logging.getLogger(__name__)


class MapSink(Sink):
    """Maintains :class:`KeyframeMap` and, for metric runs (or ``tsdf.enabled='on'``), a :class:`TsdfMap`.

    ``map.ply`` (fused coloured points) and ``mesh.ply`` (TSDF mesh) are written in ``finish`` and again in
    ``close`` if anything changed since -- so an interrupted run still leaves its map.

    Attributes:
        map: the keyframe point map (shared with the Rerun sink for display).
        tsdf: the TSDF volume, or None when disabled or not yet decided (decided at ``start``, or from the
            first keyframe's ``metric`` flag when ``start`` was not called).
        loops: accepted loop edges seen so far, by ``(kf_a, kf_b)``.
    """

    def __init__(self, cfg: MappingConfig, out_dir: str | Path):
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.map = KeyframeMap(cfg)
        self.tsdf: TsdfMap | None = None
        self.loops: dict[tuple[int, int], LoopEdge] = {}
        self._tsdf_decided = False
        self._dirty = False

    @property
    def points_path(self) -> Path:
        return self.out_dir / self.cfg.points_file

    @property
    def mesh_path(self) -> Path:
        return self.out_dir / self.cfg.mesh_file

    def _decide_tsdf(self, metric: bool) -> None:
        if self._tsdf_decided:
            return
        self._tsdf_decided = True
        mode = self.cfg.tsdf.enabled
        if mode == "on" or (mode == "auto" and metric):
            self.tsdf = TsdfMap(self.cfg.tsdf)

    # -- sink hooks ----------------------------------------------------------------------------------------
    def start(self, info: RunInfo) -> None:
        self._decide_tsdf(bool(info.metric))

    def on_frame(self, event: FrameEvent) -> None:
        if event.keyframe_id is not None and event.output is not None:
            self.map.offer_dense(event.keyframe_id, event.output, event.frame.rgb)

    def on_keyframes(self, keyframes: Sequence[Keyframe], loops: Sequence[LoopEdge]) -> None:
        keyframes = list(keyframes)
        if not keyframes:
            return
        self._decide_tsdf(bool(keyframes[0].metric))
        for edge in loops:
            self.loops[(edge.kf_a, edge.kf_b)] = edge
        added, moved = self.map.update(keyframes)
        if self.tsdf is not None:
            self.tsdf.update(keyframes, n_loops=len(self.loops))
        if added or moved:
            self._dirty = True

    def finish(self, timestamps: np.ndarray, poses: np.ndarray, metrics: dict[str, Any]) -> None:
        self.export()

    def close(self) -> None:
        if self._dirty:
            self.export()

    # -- outputs -------------------------------------------------------------------------------------------
    def mesh(self) -> o3d.geometry.TriangleMesh | None:
        """The TSDF mesh at the current keyframe poses, or None without a TSDF or keyframes."""
        if self.tsdf is None or not self.tsdf.views:
            return None
        return self.tsdf.mesh()

    def export(self) -> dict[str, Path]:
        """Write the enabled files now; returns ``{'points': path, 'mesh': path}`` for those written.

        A file that cannot be written does not stop the other one; afterwards the first write failure is
        raised (``OSError`` naming the file) so that the run reports it and exits non-zero.
        """
        written: dict[str, Path] = {}
        failure: OSError | None = None
        if self.cfg.export_points and len(self.map):
            try:
                written["points"] = write_point_cloud(self.points_path, self.map.point_cloud())
            except OSError as exc:
                failure = failure or exc
            except Exception as exc:  # noqa: BLE001 - one failed file must not lose the other
                log.warning("could not write the point map: %s", exc)
        if self.cfg.export_mesh and self.tsdf is not None:
            try:
                mesh = self.mesh()
                if mesh is not None and len(mesh.triangles):
                    written["mesh"] = write_mesh(self.mesh_path, mesh)
            except OSError as exc:
                failure = failure or exc
            except Exception as exc:  # noqa: BLE001
                log.warning("could not write the TSDF mesh: %s", exc)
        self._dirty = False
        for kind, path in written.items():
            log.info("wrote %s map to %s", kind, path)
        if failure is not None:
            raise failure
        return written
