"""TSDF of ICL keyframes: a mesh where the depth is, that follows the keyframe poses after a loop closure."""

from __future__ import annotations

import dataclasses

import numpy as np
import open3d as o3d
import pytest

from mapping.config import TsdfConfig
from mapping.keyframe_map import to_point_cloud
from mapping.tsdf import TsdfMap
from tests.mapping.icl import icl_keyframes
from tests.mapping.synthetic import pose

VOXEL = 0.03


@pytest.fixture(scope="module")
def keyframes(icl_dir):
    return icl_keyframes(icl_dir, stride=30, max_frames=5)


def _cfg(**kw) -> TsdfConfig:
    return TsdfConfig(voxel_length=VOXEL, sdf_trunc=4 * VOXEL, image_scale=0.5, **kw)


def _depth_points(kfs) -> np.ndarray:
    pts = []
    for kf in kfs:
        p = kf.points.reshape(-1, 3)
        p = p[p[:, 2] > 0]
        pts.append(p @ kf.pose[:3, :3].T + kf.pose[:3, 3])
    return np.concatenate(pts)


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from each point of ``a`` to its nearest neighbour in ``b``."""
    return np.asarray(to_point_cloud(a).compute_point_cloud_distance(to_point_cloud(b)))


def test_mesh_lies_on_the_depth_of_the_keyframes(keyframes):
    tsdf = TsdfMap(_cfg())
    tsdf.update(keyframes)
    mesh = tsdf.mesh()
    vertices = np.asarray(mesh.vertices)
    assert len(mesh.triangles) > 5000
    assert mesh.has_vertex_colors() and mesh.has_vertex_normals()
    colors = np.asarray(mesh.vertex_colors)
    assert 0.0 <= colors.min() and colors.max() <= 1.0 and colors.std() > 0.02
    # a living room seen from a few metres: extents of metres, not millimetres or kilometres
    extent = vertices.max(0) - vertices.min(0)
    assert (extent < 8.0).all() and np.sort(extent)[-2] > 1.0
    # the surface is where the sensor saw it (within about a voxel)
    assert np.median(_distances(vertices, _depth_points(keyframes))) < VOXEL


def test_mesh_follows_moved_keyframes_after_a_loop_closure(keyframes):
    tsdf = TsdfMap(_cfg(rebuild="on_change"))
    tsdf.update(keyframes)
    before = np.asarray(tsdf.mesh().vertices).copy()
    correction = pose(20.0, (0.8, -0.1, 0.4))
    moved = [dataclasses.replace(kf, pose=correction @ kf.pose) for kf in keyframes]
    tsdf.update(moved, n_loops=1)
    assert tsdf.dirty
    after = np.asarray(tsdf.mesh().vertices)
    assert tsdf.rebuilds == 1 and not tsdf.dirty
    expected = before @ correction[:3, :3].T + correction[:3, 3]
    assert np.median(_distances(after, expected)) < VOXEL / 2
    assert np.median(_distances(after, before)) > 0.2  # it really moved


def test_rebuild_policies(keyframes):
    kfs = keyframes[:2]
    nudged = [dataclasses.replace(kf, pose=pose(0.0, (0.001, 0.0, 0.0)) @ kf.pose) for kf in kfs]
    moved = [dataclasses.replace(kf, pose=pose(0.0, (0.2, 0.0, 0.0)) @ kf.pose) for kf in kfs]

    on_change = TsdfMap(_cfg(rebuild="on_change"))
    on_change.update(kfs)
    on_change.update(nudged)  # below move_tolerance
    assert not on_change.dirty
    on_change.update(moved)
    assert on_change.dirty

    on_loop = TsdfMap(_cfg(rebuild="on_loop"))
    on_loop.update(kfs)
    on_loop.update(moved, n_loops=0)
    assert not on_loop.dirty
    on_loop.update(moved, n_loops=1)
    assert on_loop.dirty

    never = TsdfMap(_cfg(rebuild="never"))
    never.update(kfs)
    never.update(moved, n_loops=1)
    assert not never.dirty
    never.mesh()
    assert never.rebuilds == 0


def test_pointmap_depth_when_the_frame_is_not_kept(keyframes):
    """Without the original frame (or for up-to-scale runs) the keyframe pointmap's depth is integrated."""
    kfs = [dataclasses.replace(kf, frame=None) for kf in keyframes]
    tsdf = TsdfMap(TsdfConfig(voxel_length=0.05, sdf_trunc=0.2))
    tsdf.update(kfs)
    vertices = np.asarray(tsdf.mesh().vertices)
    assert len(vertices) > 1000
    assert np.median(_distances(vertices, _depth_points(kfs))) < 0.05


def test_rescaled_points_rescale_the_volume(keyframes):
    """Up-to-scale runs: when the backend rescales a keyframe's points, its depth is rescaled too."""
    kfs = [dataclasses.replace(kf, frame=None, metric=False) for kf in keyframes[:2]]
    tsdf = TsdfMap(TsdfConfig(voxel_length=0.05, sdf_trunc=0.2, depth_trunc=10.0))
    tsdf.update(kfs)
    doubled = [dataclasses.replace(kf, points=kf.points * np.float32(2.0)) for kf in kfs]
    tsdf.update(doubled)
    assert tsdf.dirty
    assert all(abs(v.scale - 2.0) < 1e-3 for v in tsdf.views.values())
    vertices = np.asarray(tsdf.mesh().vertices)
    assert np.median(_distances(vertices, _depth_points(doubled))) < 0.06


def test_empty_volume_gives_an_empty_mesh():
    mesh = TsdfMap(TsdfConfig()).mesh()
    assert isinstance(mesh, o3d.geometry.TriangleMesh) and len(mesh.triangles) == 0
