"""With the real backend: a loop closure re-places the keyframe map (and is drawn in the recording).

The pipeline's sink calls are replayed on the backend's synthetic loop (a camera circling a box room with
drifting odometry and exact pair estimates): ``on_frame`` per frame, ``on_keyframes`` whenever the backend
publishes new poses.
"""

from __future__ import annotations

import numpy as np
import pytest

from backends import BackendConfig, SlamBackend
from mapping.config import MappingConfig, VizConfig
from mapping.map_sink import MapSink
from mapping.rerun_sink import RerunSink
from tests.mapping.rrd_reader import read_rrd, transform_matrix
from slam.geometry import inverse_pose
from slam.sinks import FrameEvent, RunInfo
from tests.backends.synthetic import FakeFrontend, loop_trajectory, make_frames


@pytest.fixture(scope="module")
def loop_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("loop")
    poses = loop_trajectory(150, turns=1.1)
    frames = make_frames(poses)
    cfg = BackendConfig(preset="loops", sync=True)
    cfg.keyframe.stride = 2
    frontend = FakeFrontend(drift_rot_deg=0.2, drift_scale=1.01)
    backend = SlamBackend(cfg, frontend, metric=True)
    map_sink = MapSink(MappingConfig(voxel_size=0.0, point_stride=1), out)
    viz = RerunSink(VizConfig(mode="save", budget_ms=1e6), out, keyframe_map=map_sink.map)
    sinks = [map_sink, viz]
    for s in sinks:
        s.start(RunInfo(out_dir=str(out), n_frames=len(frames), frontend="fake", metric=True, gt_poses=poses))
    snapshots = []  # (frame index, n loops, {kf id: world points}, {kf id: pose})
    for frame in frames:
        output = frontend.step(frame)
        result = backend.process(frame, output)
        event = FrameEvent(frame=frame, output=output, pose=result.pose,
                           keyframe_id=None if result.keyframe is None else result.keyframe.id)
        for s in sinks:
            s.on_frame(event)
        if backend.poll():
            kfs, loops = backend.keyframes(), backend.loops()
            for s in sinks:
                s.on_keyframes(kfs, loops)
            snapshots.append((frame.index, len(loops),
                              {k: map_sink.map.world_points(k) for k in map_sink.map.clouds},
                              {kf.id: kf.pose.copy() for kf in kfs}))
    for s in sinks:
        s.close()
    backend.close()
    return poses, snapshots, map_sink, read_rrd(out / "run.rrd")


def _gt_error(points_w: np.ndarray, cloud, poses: np.ndarray, anchor: np.ndarray) -> float:
    """Mean distance of a keyframe's world points from where the true pose puts them (same world anchor)."""
    true_pose = anchor @ poses[cloud.frame_index]
    truth = cloud.points_cam @ true_pose[:3, :3].T + true_pose[:3, 3]
    return float(np.linalg.norm(points_w - truth, axis=1).mean())


def test_loop_closure_replaces_keyframe_points(loop_run):
    poses, snapshots, map_sink, _ = loop_run
    first_loop = next(i for i, s in enumerate(snapshots) if s[1] > 0)
    assert first_loop > 0, "no loop closure was accepted by the backend"
    _, _, before, _ = snapshots[first_loop - 1]
    frame_index, _, after, _ = snapshots[first_loop]
    first_cloud = map_sink.map.clouds[0]
    anchor = first_cloud.pose @ inverse_pose(poses[first_cloud.frame_index])  # backend world vs ground truth
    moved, improved = 0, 0
    for kf_id, pts_before in before.items():
        shift = np.linalg.norm(after[kf_id] - pts_before, axis=1).mean()
        cloud = map_sink.map.clouds[kf_id]
        if shift > 0.02:
            moved += 1
            improved += _gt_error(after[kf_id], cloud, poses, anchor) < _gt_error(pts_before, cloud, poses, anchor)
    assert moved >= len(before) // 3, (moved, len(before))  # the drifted part of the map was re-placed
    assert improved >= 0.8 * moved, (improved, moved)  # ... towards where it truly is


def test_recording_shows_the_loop_and_moved_keyframes(loop_run):
    _, snapshots, _, rrd = loop_run
    first_loop = next(i for i, s in enumerate(snapshots) if s[1] > 0)
    frame_index, n_loops, _, kf_poses = snapshots[first_loop]
    loop_rows = rrd.rows["/world/loops"]
    assert loop_rows[0]["frame"] == frame_index and len(loop_rows[0]["LineStrips3D:strips"]) == n_loops
    # keyframe frusta were re-logged at the loop closure with the corrected poses
    relogged = [p for p in rrd.under("/world/keyframes")
                if any(r["frame"] == frame_index for r in rrd.with_component(p, "Transform3D:translation"))]
    assert len(relogged) >= len(kf_poses) // 3
    for path in relogged:
        row = next(r for r in rrd.with_component(path, "Transform3D:translation") if r["frame"] == frame_index)
        np.testing.assert_allclose(transform_matrix(row), kf_poses[int(path.rsplit("/", 1)[1])], atol=1e-9)
