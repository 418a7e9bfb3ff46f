"""End to end: ``slam run`` on the ICL sequence with the RGB-D frontend and ``viz=save``; outputs read back."""

from __future__ import annotations

import numpy as np
import open3d as o3d
import pytest

from tests.mapping.rrd_reader import read_rrd, transform_matrix

pytestmark = pytest.mark.slow

N_FRAMES = 60


@pytest.fixture(scope="module")
def icl_run(icl_dir, tmp_path_factory):
    from slam.config import load_run_config
    from slam.pipeline import Pipeline

    out = tmp_path_factory.mktemp("icl")
    cfg = load_run_config(None, data=icl_dir, out=out, overrides=[
        "frontend.name=rgbd", "viz=save", "backend.sync=true", f"dataset.max_frames={N_FRAMES}"])
    pipeline = Pipeline(cfg, progress=False)
    result = pipeline.run()
    return out, result, pipeline


def test_outputs_exist(icl_run):
    out, result, _ = icl_run
    assert result.n_frames == N_FRAMES and not result.interrupted
    for name in ("run.rrd", "map.ply", "mesh.ply", "trajectory.tum"):
        assert (out / name).is_file(), name


def test_recording_matches_the_trajectory(icl_run):
    from slam.trajectory import read_tum

    out, _, _ = icl_run
    rrd = read_rrd(out / "run.rrd")
    traj = read_tum(out / "trajectory.tum")
    assert {"/world", "/world/camera", "/world/camera/image", "/world/camera/depth", "/world/map", "/world/mesh",
            "/world/trajectory/final", "/metrics/fps"} <= rrd.paths
    assert rrd.under("/world/trajectory/groundtruth") and rrd.under("/world/keyframes")
    cams = rrd.with_component("/world/camera", "Transform3D:translation")
    assert [r["frame"] for r in cams] == list(range(N_FRAMES))
    # live poses (logged as they were estimated) stay close to the final optimised trajectory
    live = np.stack([transform_matrix(r) for r in cams])
    assert np.abs(live[:, :3, 3] - traj.poses[:, :3, 3]).max() < 0.05
    np.testing.assert_allclose(live[0], traj.poses[0], atol=1e-6)
    final = np.asarray(rrd.rows["/world/trajectory/final"][-1]["LineStrips3D:strips"][0])
    np.testing.assert_allclose(final, traj.poses[:, :3, 3], atol=1e-5)


def test_map_and_mesh_load_in_open3d(icl_run):
    out, _, _ = icl_run
    cloud = o3d.io.read_point_cloud(str(out / "map.ply"))
    mesh = o3d.io.read_triangle_mesh(str(out / "mesh.ply"))
    assert len(cloud.points) > 10000 and cloud.has_colors()
    assert len(mesh.triangles) > 10000 and mesh.has_vertex_colors()
    for pts in (np.asarray(cloud.points), np.asarray(mesh.vertices)):
        extent = pts.max(0) - pts.min(0)
        assert (extent < 8.0).all() and np.sort(extent)[-2] > 1.0  # a living room, in metres
