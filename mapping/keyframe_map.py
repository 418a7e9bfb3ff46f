"""The keyframe point map: each keyframe's points kept in its own camera frame, placed by its current pose.

The selection of a keyframe's pixels (stride, confidence, depth limits) is made once, when the keyframe is
first seen. After that only its pose changes -- and, for up-to-scale frontends, the scale of its points (the
backend hands out rigid poses and rescales the points instead). When the backend moves keyframes (after an
optimisation or a loop closure) the world map follows by re-applying the poses, and the fused world map
(Open3D voxel downsampling of all keyframes' world points) is recomputed lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import open3d as o3d

from mapping.config import MappingConfig
from slam.types import Keyframe


@dataclass
class KeyframeCloud:
    """Points of one keyframe.

    Attributes:
        id: keyframe id.
        frame_index: index of the frame the keyframe was made from.
        points_cam: (N,3) float32 points in the keyframe's camera frame (OpenCV axes).
        colors: (N,3) uint8 RGB.
        pose: 4x4 float64 ``T_wc`` currently used to place the points (may carry a Sim(3) scale).
        pixels: (N,) flat indices of the kept pixels in the keyframe's (h*w) pointmap.
    """

    id: int
    frame_index: int
    points_cam: np.ndarray
    colors: np.ndarray
    pose: np.ndarray
    pixels: np.ndarray

    def world_points(self) -> np.ndarray:
        """(N,3) float32 points in the world frame: ``R p + t`` with the 3x3 block of ``pose`` (incl. scale)."""
        rot = self.pose[:3, :3]
        return (self.points_cam.astype(np.float64) @ rot.T + self.pose[:3, 3]).astype(np.float32)


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


def _gather(points: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    return np.asarray(points, dtype=np.float32).reshape(-1, 3)[pixels]


class KeyframeMap:
    """All keyframes' points; the world map is derived from them and their current poses.

    ``version`` increases whenever a keyframe is added or moved, so consumers (viewer, exporter) can tell
    whether their copy is stale.
    """

    def __init__(self, cfg: MappingConfig):
        self.cfg = cfg
        self.clouds: dict[int, KeyframeCloud] = {}
        self.version = 0
        self._fused: tuple[np.ndarray, np.ndarray] | None = None
        self._fused_version = -1

    def __len__(self) -> int:
        return len(self.clouds)

    def update(self, keyframes: Iterable[Keyframe]) -> tuple[list[int], list[int]]:
        """Add new keyframes and take the current poses of known ones.

        Returns:
            (ids added, ids whose pose changed).
        """
        added, moved = [], []
        for kf in keyframes:
            pose = np.asarray(kf.pose, dtype=np.float64)
            cloud = self.clouds.get(kf.id)
            if cloud is None:
                pixels = select_pixels(kf.points, kf.confidence, self.cfg)
                colors = np.asarray(kf.colors, dtype=np.uint8).reshape(-1, 3)[pixels]
                cloud = KeyframeCloud(kf.id, kf.frame_index, _gather(kf.points, pixels), colors, pose.copy(), pixels)
                self.clouds[kf.id] = cloud
                added.append(kf.id)
                continue
            changed = False
            if not np.array_equal(cloud.pose, pose):
                cloud.pose = pose.copy()
                changed = True
            step = max(1, len(cloud.pixels) // 16)  # a few probe points tell whether the points were rescaled
            if not np.array_equal(_gather(kf.points, cloud.pixels[::step]), cloud.points_cam[::step]):
                cloud.points_cam = _gather(kf.points, cloud.pixels)
                changed = True
            if changed:
                moved.append(kf.id)
        if added or moved:
            self.version += 1
        return added, moved

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
