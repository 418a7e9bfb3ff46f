"""Map sink: PLY exports (at the end and on interrupt), TSDF only for metric runs, re-placement on loop closure."""

from __future__ import annotations

import dataclasses

import numpy as np
import open3d as o3d
import pytest

from mapping import build_sinks
from mapping.config import MappingConfig, TsdfConfig, VizConfig
from mapping.map_sink import MapSink
from mapping.rerun_sink import RerunSink
from slam.errors import ConfigError
from slam.sinks import RunInfo
from slam.types import LoopEdge
from tests.mapping.icl import icl_keyframes
from tests.mapping.synthetic import pose


@pytest.fixture(scope="module")
def keyframes(icl_dir):
    return icl_keyframes(icl_dir, stride=40, max_frames=5)


def _cfg(**kw) -> MappingConfig:
    kw.setdefault("tsdf", TsdfConfig(voxel_length=0.03, sdf_trunc=0.12, image_scale=0.5))
    return MappingConfig(voxel_size=0.02, **kw)


def _extent(points: np.ndarray) -> np.ndarray:
    return points.max(0) - points.min(0)


def test_finish_writes_map_and_mesh_that_open3d_reads(tmp_path, keyframes):
    sink = MapSink(_cfg(), tmp_path)
    sink.start(RunInfo(out_dir=str(tmp_path), n_frames=200, frontend="rgbd", metric=True))
    sink.on_keyframes(keyframes, [])
    sink.finish(np.zeros(0), np.zeros((0, 4, 4)), {})
    cloud = o3d.io.read_point_cloud(str(tmp_path / "map.ply"))
    mesh = o3d.io.read_triangle_mesh(str(tmp_path / "mesh.ply"))
    points, vertices = np.asarray(cloud.points), np.asarray(mesh.vertices)
    assert len(points) > 10000 and cloud.has_colors()
    assert len(mesh.triangles) > 5000 and mesh.has_vertex_colors()
    for ext in (_extent(points), _extent(vertices)):
        assert (ext < 8.0).all() and np.sort(ext)[-2] > 1.0  # a room, in metres
    # both describe the same place
    np.testing.assert_allclose(points.mean(0), vertices.mean(0), atol=0.3)
    assert not list(tmp_path.glob(".*partial*"))  # atomic writes leave no temporary files


def test_close_after_interrupt_writes_the_files(tmp_path, keyframes):
    """A Ctrl-C: the pipeline calls close() without finish(); the map so far is still written."""
    sink = MapSink(_cfg(), tmp_path)
    sink.on_keyframes(keyframes[:2], [])
    sink.close()
    assert o3d.io.read_point_cloud(str(tmp_path / "map.ply")).has_points()
    assert len(o3d.io.read_triangle_mesh(str(tmp_path / "mesh.ply")).triangles) > 1000


def test_tsdf_only_for_metric_runs_unless_asked(tmp_path, keyframes):
    up_to_scale = [dataclasses.replace(kf, metric=False, frame=None) for kf in keyframes[:2]]
    sink = MapSink(_cfg(), tmp_path)
    sink.start(RunInfo(out_dir=str(tmp_path), n_frames=10, frontend="ttt3r", metric=False))
    sink.on_keyframes(up_to_scale, [])
    sink.finish(np.zeros(0), np.zeros((0, 4, 4)), {})
    assert sink.tsdf is None and (tmp_path / "map.ply").is_file() and not (tmp_path / "mesh.ply").exists()

    forced = MapSink(dataclasses.replace(_cfg(), tsdf=TsdfConfig(enabled="on", voxel_length=0.05, sdf_trunc=0.2)),
                     tmp_path / "forced")
    forced.start(RunInfo(out_dir=str(tmp_path), n_frames=10, frontend="ttt3r", metric=False))
    forced.on_keyframes(up_to_scale, [])
    forced.finish(np.zeros(0), np.zeros((0, 4, 4)), {})
    assert (tmp_path / "forced" / "mesh.ply").is_file()


def test_loop_closure_replaces_the_exported_map(tmp_path, keyframes):
    sink = MapSink(_cfg(tsdf=TsdfConfig(enabled="off")), tmp_path)
    sink.on_keyframes(keyframes, [])
    before = {kf.id: sink.map.world_points(kf.id) for kf in keyframes}
    sink.export()
    exported_before = np.asarray(o3d.io.read_point_cloud(str(tmp_path / "map.ply")).points)
    # the loop edge (0, last) pulls the later keyframes by a growing correction
    corrected = [dataclasses.replace(kf, pose=pose(3.0 * kf.id, (0.1 * kf.id, 0.0, -0.05 * kf.id)) @ kf.pose)
                 for kf in keyframes]
    sink.on_keyframes(corrected, [LoopEdge(0, len(keyframes) - 1, 0.9)])
    assert sink.loops == {(0, len(keyframes) - 1): LoopEdge(0, len(keyframes) - 1, 0.9)}
    np.testing.assert_array_equal(sink.map.world_points(0), before[0])
    for kf in corrected[1:]:
        after = sink.map.world_points(kf.id)
        assert np.linalg.norm(after - before[kf.id], axis=1).mean() > 0.05
        delta = kf.pose @ np.linalg.inv(keyframes[kf.id].pose)  # world-frame correction of this keyframe
        np.testing.assert_allclose(after, before[kf.id] @ delta[:3, :3].T + delta[:3, 3], atol=1e-4)
    sink.close()  # changed since the last export -> rewritten
    exported_after = np.asarray(o3d.io.read_point_cloud(str(tmp_path / "map.ply")).points)
    assert np.abs(exported_after.mean(0) - exported_before.mean(0)).max() > 0.05


def test_build_sinks(tmp_path):
    sinks = build_sinks(MappingConfig(), VizConfig(mode="off"), tmp_path)
    assert [type(s) for s in sinks] == [MapSink]
    sinks = build_sinks(MappingConfig(), VizConfig(mode="save"), tmp_path)
    assert [type(s) for s in sinks] == [MapSink, RerunSink]
    assert sinks[1].keyframe_map is sinks[0].map
    with pytest.raises(ConfigError, match="viz.mode"):
        build_sinks(MappingConfig(), VizConfig(mode="bogus"), tmp_path)
    with pytest.raises(ConfigError, match="mapping.tsdf.rebuild"):
        build_sinks(MappingConfig(tsdf=TsdfConfig(rebuild="sometimes")), VizConfig(), tmp_path)
    with pytest.raises(ConfigError, match="viz.file"):
        build_sinks(MappingConfig(), VizConfig(mode="save", file="run.txt"), tmp_path)
