"""Writing the map to PLY files (Open3D), atomically: a crash or Ctrl-C mid-write never leaves half a file."""

from __future__ import annotations

import os
from pathlib import Path

import open3d as o3d


def _atomic(path: Path, write) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")  # Open3D picks the format from the suffix
    if not write(str(tmp)):
        tmp.unlink(missing_ok=True)
        raise OSError(f"{path}: Open3D could not write the file")
    os.replace(tmp, path)
    return path


def write_point_cloud(path: str | Path, cloud: o3d.geometry.PointCloud) -> Path:
    """Write a coloured point cloud as binary PLY (x, y, z as doubles, red/green/blue as uchar)."""
    return _atomic(Path(path), lambda p: o3d.io.write_point_cloud(p, cloud, write_ascii=False))


def write_mesh(path: str | Path, mesh: o3d.geometry.TriangleMesh) -> Path:
    """Write a triangle mesh (vertex colours and normals when present) as binary PLY."""
    return _atomic(Path(path), lambda p: o3d.io.write_triangle_mesh(p, mesh, write_ascii=False))
