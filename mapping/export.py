"""Writing the map to PLY files (Open3D), atomically: a crash or Ctrl-C mid-write never leaves half a file."""

from __future__ import annotations

import errno
from pathlib import Path

import open3d as o3d

from slam.atomic import atomic_path


_PLY_SIZES = {"char": 1, "int8": 1, "uchar": 1, "uint8": 1, "short": 2, "int16": 2, "ushort": 2, "uint16": 2,
              "int": 4, "int32": 4, "uint": 4, "uint32": 4, "float": 4, "float32": 4, "double": 8, "float64": 8}


def _ply_complete(path: Path) -> bool:
    """True when a binary PLY written by Open3D is as long as its header says.

    List properties (face indices) are taken as triangles (3 items), which is what Open3D writes here.
    """
    with open(path, "rb") as f:
        head = f.read(4096)
    end = head.find(b"end_header\n")
    if end < 0:
        return False
    expected, count = end + len(b"end_header\n"), 0
    for line in head[:end].decode("ascii", "replace").splitlines():
        words = line.split()
        if words[:1] == ["element"] and len(words) == 3:
            count = int(words[2])
        elif words[:2] == ["property", "list"] and len(words) == 5:
            expected += count * (_PLY_SIZES[words[2]] + 3 * _PLY_SIZES[words[3]])
        elif words[:1] == ["property"] and len(words) == 3:
            expected += count * _PLY_SIZES[words[1]]
    return path.stat().st_size == expected


def _atomic(path: Path, write) -> Path:
    """Write through :func:`slam.atomic.atomic_path` (the temporary file keeps the suffix, from which Open3D
    picks the format); failures raise ``OSError`` with ``filename=path``."""
    with atomic_path(path) as tmp:
        if not write(str(tmp)):
            raise OSError(errno.EIO, "Open3D could not write the file (disk full or not writable?)")
    return path


def write_point_cloud(path: str | Path, cloud: o3d.geometry.PointCloud) -> Path:
    """Write a coloured point cloud as binary PLY (x, y, z as doubles, red/green/blue as uchar).

    Open3D reports success even when the disk fills up mid-write, so the file's size is checked against
    its header (:func:`_ply_complete`) before it replaces ``path``.
    """

    def write(tmp: str) -> bool:
        return o3d.io.write_point_cloud(tmp, cloud, write_ascii=False) and _ply_complete(Path(tmp))

    return _atomic(Path(path), write)


def write_mesh(path: str | Path, mesh: o3d.geometry.TriangleMesh) -> Path:
    """Write a triangle mesh (vertex colours and normals when present) as binary PLY (size verified, see
    :func:`write_point_cloud`)."""

    def write(tmp: str) -> bool:
        return o3d.io.write_triangle_mesh(tmp, mesh, write_ascii=False) and _ply_complete(Path(tmp))

    return _atomic(Path(path), write)
