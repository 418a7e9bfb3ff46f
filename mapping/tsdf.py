"""TSDF volume of the keyframes (Open3D ``VoxelBlockGrid``), re-integrated when keyframe poses move.

Each keyframe contributes one RGB-D view: the sensor depth of its original frame when the run is metric and
the frame is kept, else the z channel of its pointmap (in the frontend's scale). The view is copied when the
keyframe is first seen (the backend may drop frames later), so the volume can be rebuilt from scratch at
the keyframes' new poses after a loop closure -- Open3D volumes cannot de-integrate a view. Rebuilds are
deferred until a mesh is asked for, so a burst of pose updates costs one rebuild.

The tensor ``VoxelBlockGrid`` is used rather than the legacy ``ScalableTSDFVolume``, which integrates
nothing in the installed Open3D 0.20 wheel (its meshes come out empty).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np
import open3d as o3d
import open3d.core as o3c

from mapping.config import TsdfConfig
from slam.camera import scale_intrinsics
from slam.geometry import inverse_pose, rotation_angle, rotation_part, similarity_scale
from slam.types import Keyframe

_PROBES = 64
_BLOCK_RESOLUTION = 8  # voxels per block edge; the block hash map grows as needed


@dataclass
class _View:
    """One keyframe's RGB-D view as stored for (re-)integration.

    Attributes:
        rgb: (h,w,3) uint8.
        depth: (h,w) float32 depth along the camera z axis at the scale the keyframe had when stored (0 = none).
        K: 3x3 intrinsics for (h, w).
        pose: 4x4 rigid ``T_wc`` to integrate at.
        scale: factor applied to ``depth`` at integration (the keyframe's scale change since it was stored,
            times any Sim(3) scale of its pose).
        probe_pixels: flat pixel indices into the keyframe pointmap used to detect a rescaling of its points.
        probe_norms: norms of the points at ``probe_pixels`` when stored.
        median_depth: median valid depth, to turn a scale change into a displacement.
    """

    rgb: np.ndarray
    depth: np.ndarray
    K: np.ndarray
    pose: np.ndarray
    scale: float
    probe_pixels: np.ndarray
    probe_norms: np.ndarray
    median_depth: float


class TsdfMap:
    """A TSDF volume over the keyframes, with a rebuild policy for pose changes (``TsdfConfig.rebuild``).

    Attributes:
        views: keyframe id -> stored view.
        dirty: True when the volume no longer matches the stored poses (rebuilt on the next :meth:`mesh`).
        rebuilds: number of complete re-integrations so far.
    """

    def __init__(self, cfg: TsdfConfig):
        self.cfg = cfg
        self.views: dict[int, _View] = {}
        self.dirty = False
        self.rebuilds = 0
        self._volume = self._new_volume()
        self._loops_seen = 0
        self._moved_since_loop = False
        self._mesh: o3d.geometry.TriangleMesh | None = None

    def _new_volume(self) -> o3d.t.geometry.VoxelBlockGrid:
        return o3d.t.geometry.VoxelBlockGrid(
            attr_names=("tsdf", "weight", "color"),
            attr_dtypes=(o3c.float32, o3c.float32, o3c.float32),
            attr_channels=((1), (1), (3)),
            voxel_size=self.cfg.voxel_length,
            block_resolution=_BLOCK_RESOLUTION,
            block_count=1000,
        )

    # -- updates -------------------------------------------------------------------------------------------
    def update(self, keyframes: Iterable[Keyframe], n_loops: int = 0) -> None:
        """Integrate new keyframes and take the current poses (and point scales) of known ones.

        Args:
            keyframes: keyframes whose ``pose`` is the current optimised ``T_wc``.
            n_loops: number of accepted loop closures so far (for ``rebuild='on_loop'``).
        """
        moved = False
        for kf in keyframes:
            view = self.views.get(kf.id)
            if view is None:
                view = self._store(kf)
                self.views[kf.id] = view
                if not self.dirty:
                    self._integrate(view)
                continue
            pose, scale = self._placement(kf, view)
            if self._moved(view, pose, scale):
                view.pose, view.scale = pose, scale
                moved = True
        if moved:
            self._moved_since_loop = True
        new_loop = n_loops > self._loops_seen
        self._loops_seen = max(self._loops_seen, n_loops)
        if self.cfg.rebuild == "on_change" and moved:
            self.dirty = True
        elif self.cfg.rebuild == "on_loop" and new_loop and self._moved_since_loop:
            self.dirty = True
            self._moved_since_loop = False

    def _store(self, kf: Keyframe) -> _View:
        frame = kf.frame
        if kf.metric and frame is not None and frame.depth is not None and frame.K is not None:
            rgb, depth, K = frame.rgb, np.asarray(frame.depth, np.float32), np.asarray(frame.K, np.float64)
        else:
            pts = np.asarray(kf.points, np.float32)
            depth = np.where(np.isfinite(pts[..., 2]) & (kf.confidence > 0), pts[..., 2], 0.0).astype(np.float32)
            rgb, K = kf.colors, np.asarray(kf.K, np.float64)
        depth = np.where(depth > 0, depth, 0.0).astype(np.float32)
        h, w = depth.shape
        if self.cfg.image_scale < 1.0:
            size = (max(1, round(h * self.cfg.image_scale)), max(1, round(w * self.cfg.image_scale)))
            K = scale_intrinsics(K, (h, w), size)
            rgb = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)
            depth = cv2.resize(depth, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
        flat = np.asarray(kf.points, np.float32).reshape(-1, 3)
        norms = np.linalg.norm(flat, axis=1)
        valid = np.flatnonzero(np.isfinite(norms) & (norms > 0))
        probes = valid[np.linspace(0, len(valid) - 1, min(_PROBES, len(valid))).astype(int)] if len(valid) else valid
        median_depth = float(np.median(depth[depth > 0])) if (depth > 0).any() else 0.0
        view = _View(np.ascontiguousarray(rgb, np.uint8), np.ascontiguousarray(depth), K, np.eye(4), 1.0,
                     probes, norms[probes], median_depth)
        view.pose, view.scale = self._placement(kf, view)
        return view

    @staticmethod
    def _placement(kf: Keyframe, view: _View) -> tuple[np.ndarray, float]:
        """Rigid pose and depth factor that place ``view`` where ``kf`` currently is."""
        pose = np.asarray(kf.pose, np.float64)
        s_pose = float(similarity_scale(pose))
        rigid = pose.copy()
        rigid[:3, :3] = rotation_part(pose)
        s_points = 1.0
        if len(view.probe_pixels):
            now = np.linalg.norm(np.asarray(kf.points, np.float32).reshape(-1, 3)[view.probe_pixels], axis=1)
            ratio = now / view.probe_norms
            ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
            if len(ratio):
                s_points = float(np.median(ratio))
        return rigid, s_pose * s_points

    def _moved(self, view: _View, pose: np.ndarray, scale: float) -> bool:
        delta = inverse_pose(view.pose) @ pose
        angle = math.degrees(rotation_angle(delta))
        scale_shift = abs(scale / view.scale - 1.0) * view.median_depth
        return (
            np.linalg.norm(delta[:3, 3]) > self.cfg.move_tolerance
            or angle > self.cfg.rotation_tolerance_deg
            or scale_shift > self.cfg.move_tolerance
        )

    def _integrate(self, view: _View) -> None:
        depth = np.ascontiguousarray(view.depth * np.float32(view.scale), dtype=np.float32)
        if not (depth > 0).any():
            return
        depth_image = o3d.t.geometry.Image(o3c.Tensor(depth))
        color_image = o3d.t.geometry.Image(o3c.Tensor(view.rgb.astype(np.float32) / 255.0))
        K = o3c.Tensor(np.asarray(view.K, np.float64))
        extrinsic = o3c.Tensor(inverse_pose(view.pose))  # world -> camera
        trunc = self.cfg.sdf_trunc / self.cfg.voxel_length  # truncation in voxels
        blocks = self._volume.compute_unique_block_coordinates(depth_image, K, extrinsic, 1.0, self.cfg.depth_trunc, trunc)
        self._volume.integrate(blocks, depth_image, color_image, K, extrinsic, 1.0, self.cfg.depth_trunc, trunc)
        self._mesh = None

    # -- outputs -------------------------------------------------------------------------------------------
    def rebuild(self) -> None:
        """Re-integrate every stored view at its current pose into a fresh volume."""
        self._volume = self._new_volume()
        for kf_id in sorted(self.views):
            self._integrate(self.views[kf_id])
        self.dirty = False
        self.rebuilds += 1

    def mesh(self) -> o3d.geometry.TriangleMesh:
        """Triangle mesh (marching cubes) of the volume at the current poses, with vertex colours and normals."""
        if self.dirty:
            self.rebuild()
        if self._mesh is None:
            if self._volume.hashmap().size() == 0:
                self._mesh = o3d.geometry.TriangleMesh()
            else:
                threshold = max(self.cfg.min_observations - 0.5, 0.0)
                mesh = self._volume.extract_triangle_mesh(weight_threshold=threshold).to_legacy()
                if mesh.has_vertex_colors():  # interpolated colours may overshoot [0, 1] by rounding
                    mesh.vertex_colors = o3d.utility.Vector3dVector(np.clip(np.asarray(mesh.vertex_colors), 0.0, 1.0))
                mesh.compute_vertex_normals()
                self._mesh = mesh
        return self._mesh
