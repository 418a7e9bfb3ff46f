"""Writing the map to PLY files (Open3D), atomically: a crash or Ctrl-C mid-write never leaves half a file."""

from __future__ import annotations

from pathlib import Path

import open3d as o3d
from slam.atomic import atomic_path


def _atomic(path: Path, write) -> Path:
    with atomic_path(path) as tmp:  # Open3D picks the format from the suffix, which the temporary file keeps
        if not write(str(tmp)):
            raise OSError(f"{path}: Open3D could not write the file")
    return path


def write_point_cloud(path: str | Path, cloud: o3d.geometry.PointCloud) -> Path:
    """Write a coloured point cloud as binary PLY (x, y, z as doubles, red/green/blue as uchar)."""
    return _atomic(Path(path), lambda p: o3d.io.write_point_cloud(p, cloud, write_ascii=False))


def write_mesh(path: str | Path, mesh: o3d.geometry.TriangleMesh) -> Path:
    """Write a triangle mesh (vertex colours and normals when present) as binary PLY."""
    return _atomic(Path(path), lambda p: o3d.io.write_triangle_mesh(p, mesh, write_ascii=False))
