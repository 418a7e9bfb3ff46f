"""The keyframe point map: each keyframe's points kept in its own camera frame, placed by its current pose.

Where a keyframe's points come from: the backend's :class:`~slam.types.Keyframe` holds a coarse pointmap
(the frontend's output subsampled by the keyframer's stride). When the frontend's full-size output of the
keyframe's frame was offered (:meth:`KeyframeMap.offer_dense`, done by the map sink from the per-frame event),
the map uses that instead, at ``mapping.point_stride``, so the map is as dense as asked for.

The selection of a keyframe's points (stride, confidence, depth limit, a voxel grid in the camera frame) is
made once, when the keyframe is first seen. After that only its pose changes -- and, for up-to-scale
frontends, the scale of its points (the backend hands out rigid poses and rescales the keyframe points
instead; the factor is read off the keyframe's own points at a few probe pixels). When the backend moves
keyframes (after an optimisation or a loop closure) the world map follows by re-applying the poses, and the
fused world map (Open3D voxel downsampling of all keyframes' world points) is recomputed lazily.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np
import open3d as o3d

from mapping.config import MappingConfig
from slam.geometry import transform_points
from slam.types import FrontendOutput, Keyframe

_PROBES = 32
_MAX_PENDING = 16


@dataclass
class KeyframeCloud:
    """Points of one keyframe.

    Attributes:
        id: keyframe id.
        frame_index: index of the frame the keyframe was made from.
        base_points: (N,3) float32 points in the keyframe's camera frame (OpenCV axes) at the scale the keyframe
            had when first seen.
        colors: (N,3) uint8 RGB.
        pose: 4x4 float64 ``T_wc`` currently used to place the points (may carry a Sim(3) scale).
        scale: factor of the keyframe's points now relative to when first seen.
        probe_pixels: flat indices into the keyframe's (h*w) pointmap used to measure ``scale``.
        probe_norms: norms of the keyframe's points at ``probe_pixels`` when first seen.
        dense: True when the points come from the frontend's full-size output rather than ``Keyframe.points``.
    """

    id: int
    frame_index: int
    base_points: np.ndarray
    colors: np.ndarray
    pose: np.ndarray
    scale: float
    probe_pixels: np.ndarray
    probe_norms: np.ndarray
    dense: bool = False

    @property
    def points_cam(self) -> np.ndarray:
        """(N,3) float32 points in the camera frame at the keyframe's current scale."""
        return self.base_points if self.scale == 1.0 else self.base_points * np.float32(self.scale)

    def world_points(self) -> np.ndarray:
        """(N,3) float32 points in the world frame: ``A p + t`` with the 3x3 block ``A`` of ``pose`` (incl. scale)."""
        return transform_points(self.pose, self.points_cam.astype(np.float64)).astype(np.float32)


def select_pixels(points: np.ndarray, confidence: np.ndarray, cfg: MappingConfig) -> np.ndarray:
    """Flat indices of the usable pixels of an (h,w,3) camera-frame pointmap.

    A pixel is kept when it lies on the ``cfg.point_stride`` grid, its point is finite and in front of the
    camera (z > 0, and z <= ``cfg.max_depth`` when that is set), and its confidence (h,w) is > 0 and
    >= ``cfg.min_confidence``.
    """
    h, w = points.shape[:2]
    s = cfg.point_stride
    grid = (np.arange(h)[::s, None] * w + np.arange(w)[None, ::s]).reshape(-1)
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 3)[grid]
    conf = np.asarray(confidence, dtype=np.float32).reshape(-1)[grid]
    keep = np.isfinite(pts).all(axis=1) & (pts[:, 2] > 0) & (conf > 0) & (conf >= cfg.min_confidence)
    if cfg.max_depth > 0:
        keep &= pts[:, 2] <= cfg.max_depth
    return grid[keep]


def _flat(points: np.ndarray) -> np.ndarray:
    return np.asarray(points, dtype=np.float32).reshape(-1, 3)


def _norm_ratio(now: np.ndarray, then: np.ndarray) -> float:
    """Median of ``|now| / |then|`` over pairs where both are finite and non-zero; 1.0 when there are none."""
    ratio = np.linalg.norm(now, axis=1) / np.where(then > 0, then, np.nan)
    ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
    return float(np.median(ratio)) if len(ratio) else 1.0


def _grid_stride(dense_shape: tuple[int, ...], coarse_shape: tuple[int, ...]) -> int | None:
    """The stride ``s`` with ``dense[::s, ::s].shape == coarse.shape``, or None."""
    s = max(1, round(dense_shape[0] / max(coarse_shape[0], 1)))
    ok = -(-dense_shape[0] // s) == coarse_shape[0] and -(-dense_shape[1] // s) == coarse_shape[1]
    return s if ok else None


class KeyframeMap:
    """All keyframes' points; the world map is derived from them and their current poses.

    ``version`` increases whenever a keyframe is added or moved, so consumers (viewer, exporter) can tell
    whether their copy is stale.
    """

    def __init__(self, cfg: MappingConfig):
        self.cfg = cfg
        self.clouds: dict[int, KeyframeCloud] = {}
        self.version = 0
        self._pending: OrderedDict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()
        self._fused: tuple[np.ndarray, np.ndarray] | None = None
        self._fused_version = -1

    def __len__(self) -> int:
        return len(self.clouds)

    def offer_dense(self, kf_id: int, output: FrontendOutput, rgb: np.ndarray | None = None) -> None:
        """Offer the frontend's full-size output of the frame that became keyframe ``kf_id``.

        Used when the keyframe arrives (:meth:`update`) if its pointmap is a strided subsample of this one.
        ``rgb`` (the frame's image) is resized for colours when ``output.colors`` is None.
        """
        if kf_id in self.clouds:
            return
        h, w = output.points.shape[:2]
        colors = output.colors
        if colors is None:
            if rgb is None:
                return
            colors = rgb if rgb.shape[:2] == (h, w) else cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        self._pending[kf_id] = (output.points, output.confidence, colors)
        while len(self._pending) > _MAX_PENDING:
            self._pending.popitem(last=False)

    def update(self, keyframes: Iterable[Keyframe]) -> tuple[list[int], list[int]]:
        """Add new keyframes and take the current poses (and point scales) of known ones.

        Returns:
            (ids added, ids whose pose or scale changed).
        """
        added, moved = [], []
        for kf in keyframes:
            pose = np.asarray(kf.pose, dtype=np.float64)
            cloud = self.clouds.get(kf.id)
            if cloud is None:
                self.clouds[kf.id] = self._new_cloud(kf, pose)
                added.append(kf.id)
                continue
            scale = _norm_ratio(_flat(kf.points)[cloud.probe_pixels], cloud.probe_norms) if len(cloud.probe_pixels) \
                else 1.0
            if abs(scale - cloud.scale) > 1e-6 * cloud.scale or not np.array_equal(cloud.pose, pose):
                cloud.pose, cloud.scale = pose.copy(), scale
                moved.append(kf.id)
        if added or moved:
            self.version += 1
        return added, moved

    def _new_cloud(self, kf: Keyframe, pose: np.ndarray) -> KeyframeCloud:
        coarse = _flat(kf.points)
        norms = np.linalg.norm(coarse, axis=1)
        valid = np.flatnonzero(np.isfinite(norms) & (norms > 0))
        probes = valid[np.linspace(0, len(valid) - 1, min(_PROBES, len(valid))).astype(int)] if len(valid) else valid
        dense = self._pending.pop(kf.id, None)
        stride = None if dense is None else _grid_stride(dense[0].shape, kf.points.shape)
        if stride is not None:
            points, confidence, colors = dense
            # the keyframe's points may already be rescaled by the backend: bring the dense ones to that scale
            factor = _norm_ratio(coarse, np.linalg.norm(_flat(points[::stride, ::stride]), axis=1))
            pixels = select_pixels(points, confidence, self.cfg)
            base = _flat(points)[pixels] * np.float32(factor)
        else:
            colors = kf.colors
            pixels = select_pixels(kf.points, kf.confidence, self.cfg)
            base = coarse[pixels]
        base, cols = self._thin(base, np.asarray(colors, dtype=np.uint8).reshape(-1, 3)[pixels])
        return KeyframeCloud(kf.id, kf.frame_index, base, cols, pose.copy(), 1.0, probes, norms[probes],
                             dense=stride is not None)

    def _thin(self, points: np.ndarray, colors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Voxel-downsample one keyframe's points in its camera frame (``cfg.voxel_size``)."""
        if self.cfg.voxel_size <= 0 or not len(points):
            return points, colors
        pcd = to_point_cloud(points, colors).voxel_down_sample(self.cfg.voxel_size)
        return (np.asarray(pcd.points, dtype=np.float32),
                np.clip(np.asarray(pcd.colors) * 255.0 + 0.5, 0, 255).astype(np.uint8))

    def world_points(self, kf_id: int) -> np.ndarray:
        """(N,3) float32 world points of one keyframe at its current pose."""
        return self.clouds[kf_id].world_points()

    def all_points(self) -> tuple[np.ndarray, np.ndarray]:
        """Every keyframe's world points and colours, concatenated: (N,3) float32, (N,3) uint8."""
        if not self.clouds:
            return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8)
        clouds = [self.clouds[k] for k in sorted(self.clouds)]
        return (
            np.concatenate([c.world_points() for c in clouds]),
            np.concatenate([c.colors for c in clouds]),
        )

    def fused(self) -> tuple[np.ndarray, np.ndarray]:
        """The world map: all keyframe points voxel-downsampled (``cfg.voxel_size``), cached per version.

        Returns:
            (M,3) float32 points, (M,3) uint8 colours (voxel means).
        """
        if self._fused is None or self._fused_version != self.version:
            pts, col = self.all_points()
            if self.cfg.voxel_size > 0 and len(pts):
                pcd = to_point_cloud(pts, col).voxel_down_sample(self.cfg.voxel_size)
                pts = np.asarray(pcd.points, dtype=np.float32)
                col = np.clip(np.asarray(pcd.colors) * 255.0 + 0.5, 0, 255).astype(np.uint8)
            self._fused = (pts, col)
            self._fused_version = self.version
        return self._fused

    def point_cloud(self) -> o3d.geometry.PointCloud:
        """The fused world map as an Open3D point cloud (colours in [0, 1])."""
        return to_point_cloud(*self.fused())


def to_point_cloud(points: np.ndarray, colors: np.ndarray | None = None) -> o3d.geometry.PointCloud:
    """(N,3) points and optional (N,3) uint8 colours -> Open3D point cloud."""
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, dtype=np.float64)))
    if colors is not None and len(colors):
        pcd.colors = o3d.utility.Vector3dVector(np.asarray(colors, dtype=np.float64) / 255.0)
    return pcd
