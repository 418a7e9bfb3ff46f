"""Tests of the classical RGB-D frontend: pointmaps, odometry on rendered and real (ICL) frames, pairs."""

from __future__ import annotations

import numpy as np
import pytest

import frontends
from frontends.rgbd import RgbdConfig, RgbdFrontend, global_descriptor
from frontends.rgbd.frontend import rotation_deg
from slam.camera import scale_intrinsics
from slam.datasets import open_dataset
from slam.datasets.base import DatasetConfig
from slam.errors import ConfigError, DatasetError
from slam.geometry import project_points
from slam.pointmaps import backproject_depth, depth_confidence, downsample_depth
from slam.synthetic import DemoRenderer, camera_path
from slam.types import Frame

LOOP = 150  # frames of the demo loop the rendered test frames come from


def ate_se3(est: list[np.ndarray], gt: list[np.ndarray]) -> float:
    """RMSE (m) of positions after the least-squares rigid alignment of ``est`` onto ``gt`` (Kabsch)."""
    P = np.array([T[:3, 3] for T in est])
    Q = np.array([T[:3, 3] for T in gt])
    mp, mq = P.mean(0), Q.mean(0)
    U, _, Vt = np.linalg.svd((P - mp).T @ (Q - mq))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
    R = Vt.T @ D @ U.T
    return float(np.sqrt((((P - mp) @ R.T + mq - Q) ** 2).sum(1).mean()))


@pytest.fixture(scope="module")
def demo_frames() -> dict[int, Frame]:
    """Rendered 320x240 frames of the demo loop: the first 16, a revisit and the far side."""
    renderer = DemoRenderer((240, 320), seed=0)
    poses = camera_path(LOOP)
    frames = {}
    for i in [*range(16), LOOP // 2, LOOP - 1]:
        rgb, depth = renderer.render(poses[i])
        frames[i] = Frame(index=i, timestamp=i / 30, rgb=rgb, depth=depth, K=renderer.K, gt_pose=poses[i],
                          source=f"demo frame {i}")
    return frames


# ---------------------------------------------------------------------------------------------- pointmaps

def plane_depth(K: np.ndarray, size: tuple[int, int], normal: np.ndarray, offset: float) -> np.ndarray:
    """Depth map of the plane ``normal . p = offset`` (camera frame) seen through pinhole ``K``."""
    h, w = size
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    return (offset / (rays @ normal)).astype(np.float32)


def test_backproject_recovers_a_known_plane():
    K = np.array([[300.0, 0, 79.5], [0, 310.0, 59.5], [0, 0, 1]])
    normal = np.array([0.2, -0.3, 1.0]) / np.linalg.norm([0.2, -0.3, 1.0])
    depth = plane_depth(K, (120, 160), normal, 1.5)
    depth[10:20, 30:40] = 0.0  # a hole
    pts = backproject_depth(depth, K)
    assert pts.shape == (120, 160, 3) and pts.dtype == np.float32
    valid = depth > 0
    np.testing.assert_allclose(pts[valid] @ normal, 1.5, atol=1e-5)
    np.testing.assert_allclose(pts[..., 2][valid], depth[valid])
    assert np.all(pts[~valid] == 0)
    uv, z = project_points(pts[60, 100], K)  # and back to its pixel
    np.testing.assert_allclose(uv, [100, 60], atol=1e-3)


def test_downsampled_depth_stays_on_the_plane_with_scaled_intrinsics():
    K = np.array([[300.0, 0, 80.0], [0, 300.0, 60.0], [0, 0, 1]])
    normal = np.array([0.0, 0.4, 1.0]) / np.linalg.norm([0.0, 0.4, 1.0])
    depth = plane_depth(K, (121, 161), normal, 2.0)  # odd size: the remainder row/column is dropped
    small = downsample_depth(depth, 2)
    assert small.shape == (60, 80)
    K_small = scale_intrinsics(K, (120, 160), (60, 80))
    pts = backproject_depth(small, K_small)
    # block means of a plane's depth are within a hair of the plane at the block centre
    np.testing.assert_allclose(pts.reshape(-1, 3) @ normal, 2.0, atol=2e-4)


def test_downsample_invalidates_discontinuities_and_holes():
    depth = np.full((4, 4), 2.0, np.float32)
    depth[0, 0] = 3.0  # a depth jump inside the top-left block
    depth[2:4, 2] = 0.0
    depth[2, 3] = 0.0  # 3 of 4 invalid in the bottom-right block
    small = downsample_depth(depth, 2)
    assert small[0, 0] == 0.0 and small[1, 1] == 0.0
    assert small[0, 1] == pytest.approx(2.0) and small[1, 0] == pytest.approx(2.0)


def test_depth_confidence_is_zero_where_invalid_and_falls_with_depth():
    depth = np.tile(np.linspace(0.5, 4.0, 32, dtype=np.float32), (8, 1))
    depth[:, :2] = 0.0
    conf = depth_confidence(depth, depth_scale=2.0, edge_jump=None)
    assert np.all(conf[:, :2] == 0)
    assert np.all(np.diff(conf[:, 2:], axis=1) < 0)
    assert conf[0, -1] == pytest.approx(1 / (1 + (4.0 / 2.0) ** 2), rel=1e-5)
    step = np.full((8, 8), 1.0, np.float32)
    step[:, 4:] = 2.0
    edges = depth_confidence(step, edge_jump=0.05)
    assert np.all(edges[:, 3:5] == 0) and np.all(edges[:, :3] > 0)


# ---------------------------------------------------------------------------------------------- errors

def test_frames_without_depth_or_intrinsics_are_rejected(demo_frames):
    fe = RgbdFrontend()
    f = demo_frames[0]
    no_depth = Frame(0, 0.0, f.rgb, None, f.K, source="seq/rgb/0.png")
    with pytest.raises(DatasetError, match="depth") as err:
        fe.step(no_depth)
    assert "seq/rgb/0.png" in str(err.value)
    with pytest.raises(DatasetError, match="intrinsics"):
        fe.step(Frame(0, 0.0, f.rgb, f.depth, None))
    with pytest.raises(DatasetError, match="differs"):
        fe.step(Frame(0, 0.0, f.rgb, f.depth[:-2], f.K))
    with pytest.raises(DatasetError, match="depth"):
        fe.pair(f, no_depth)


def test_bad_options_raise_config_errors():
    with pytest.raises(ConfigError, match="method"):
        RgbdFrontend(RgbdConfig(method="sift"))
    with pytest.raises(ConfigError, match="downsample"):
        RgbdFrontend(RgbdConfig(downsample=0))
    assert isinstance(frontends.create("rgbd"), RgbdFrontend)


# ---------------------------------------------------------------------------------------------- stream

def test_odometry_on_rendered_frames(demo_frames):
    fe = RgbdFrontend()
    outs = [fe.step(demo_frames[i]) for i in range(16)]
    gt = [demo_frames[i].gt_pose for i in range(16)]
    est = [o.pose for o in outs]
    assert ate_se3(est, gt) < 0.005
    rel_gt = np.linalg.inv(gt[0]) @ gt[-1]
    rel_est = np.linalg.inv(est[0]) @ est[-1]
    assert np.linalg.norm(rel_est[:3, 3] - rel_gt[:3, 3]) < 0.01  # 0.6 m travelled
    assert rotation_deg(np.linalg.inv(rel_gt) @ rel_est) < 0.5  # 36 degrees turned
    np.testing.assert_allclose(est[0], np.eye(4))
    o = outs[5]
    assert o.metric and o.segment == 0 and o.points.shape == (120, 160, 3) and o.colors.shape == (120, 160, 3)
    np.testing.assert_allclose(o.K, scale_intrinsics(demo_frames[5].K, (240, 320), (120, 160)))
    assert o.confidence.shape == (120, 160) and o.confidence.max() <= 1 and o.confidence.min() >= 0
    assert o.descriptor is not None and np.linalg.norm(o.descriptor) == pytest.approx(1.0, abs=1e-5)
    assert not any(x.stats["odometry_failed"] for x in outs)
    assert sum(x.stats["new_reference"] for x in outs) < 16  # frame-to-keyframe, not frame-to-frame
    assert {"odometry_fitness", "reference_index", "time_ms"} <= set(o.stats)


def test_odometry_failure_keeps_the_motion_and_lowers_confidence(demo_frames):
    fe = RgbdFrontend()
    outs = [fe.step(demo_frames[i]) for i in range(4)]
    f = demo_frames[4]
    rng = np.random.default_rng(0)
    garbage = Frame(4, 4 / 30, rng.integers(0, 255, f.rgb.shape, dtype=np.uint8),
                    np.full(f.depth.shape, 0.6, np.float32), f.K)  # noise on a near wall: nothing to align
    out = fe.step(garbage)
    assert out.stats["odometry_failed"]
    velocity = np.linalg.inv(outs[2].pose) @ outs[3].pose
    np.testing.assert_allclose(out.pose, outs[3].pose @ velocity, atol=1e-9)
    normal = RgbdFrontend().step(garbage)  # same frame, first of a stream: not a failure
    assert out.confidence.max() < normal.confidence.max()
    # the pose confidence drops to the failure factor; tracked frames report their inlier fitness
    assert out.pose_confidence == RgbdConfig().failure_confidence < 0.5
    assert outs[3].pose_confidence == pytest.approx(outs[3].stats["odometry_fitness"]) and outs[3].pose_confidence > 0.5


def test_reset_starts_a_new_segment(demo_frames):
    fe = RgbdFrontend()
    fe.step(demo_frames[0])
    fe.step(demo_frames[1])
    fe.reset()
    out = fe.step(demo_frames[2])
    assert out.segment == 1
    np.testing.assert_allclose(out.pose, np.eye(4))


def test_icl_first_30_frames_follow_the_reference(icl_dir):
    frames = list(open_dataset(DatasetConfig(path=str(icl_dir), max_frames=30)))
    fe = RgbdFrontend()
    est = [fe.step(f).pose for f in frames]
    gt = [f.gt_pose for f in frames]
    assert ate_se3(est, gt) < 0.02
    d_est = est[-1][:3, 3] - est[0][:3, 3]
    d_gt = gt[-1][:3, 3] - gt[0][:3, 3]
    assert d_est @ d_gt / (np.linalg.norm(d_est) * np.linalg.norm(d_gt)) > 0.98
    assert abs(np.linalg.norm(d_est) - np.linalg.norm(d_gt)) < 0.03


# ---------------------------------------------------------------------------------------------- pairs

def test_pair_recovers_a_known_relative_pose(demo_frames):
    a, b = demo_frames[0], demo_frames[8]  # 0.3 m and 19 degrees apart
    pe = RgbdFrontend().pair(a, b)
    gt = np.linalg.inv(a.gt_pose) @ b.gt_pose
    assert np.linalg.norm(pe.T_ab[:3, 3] - gt[:3, 3]) < 0.01
    assert rotation_deg(np.linalg.inv(gt) @ pe.T_ab) < 0.5
    assert pe.confidence > 0.3 and not pe.sim3 and pe.scale == 1.0
    # b's points in a's frame land on a's points where both see the same surface
    centre = pe.points_b[60, 80]
    uv, _ = project_points(centre, RgbdFrontend()._view(a).K)
    u, v = np.round(uv).astype(int)
    assert np.linalg.norm(pe.points_a[v, u] - centre) < 0.02


def test_pair_closes_the_demo_loop_and_rejects_unrelated_views(demo_frames):
    fe = RgbdFrontend()
    loop = fe.pair(demo_frames[0], demo_frames[LOOP - 1])
    gt = np.linalg.inv(demo_frames[0].gt_pose) @ demo_frames[LOOP - 1].gt_pose
    assert np.linalg.norm(loop.T_ab[:3, 3] - gt[:3, 3]) < 0.015 and loop.confidence > 0.5
    far = fe.pair(demo_frames[0], demo_frames[LOOP // 2])  # opposite side of the room, no overlap
    assert far.confidence < 0.3


def test_pair_does_not_touch_the_stream_state(demo_frames, single_open3d_thread):
    _pair_leaves_stream_alone(demo_frames)


def _pair_leaves_stream_alone(demo_frames):
    plain, probed = RgbdFrontend(), RgbdFrontend()
    for i in range(6):
        plain.step(demo_frames[i])
        probed.step(demo_frames[i])
    before = dict(vars(probed))
    probed.pair(demo_frames[LOOP - 1], demo_frames[2])
    after = vars(probed)
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert after[key] is value or np.array_equal(after[key], value), key
    # and the stream goes on exactly as without the pair estimate
    for i in range(6, 10):
        np.testing.assert_array_equal(plain.step(demo_frames[i]).pose, probed.step(demo_frames[i]).pose)


def test_descriptor_scores_a_revisit_above_the_far_side(demo_frames):
    d = {i: global_descriptor(demo_frames[i].rgb) for i in (0, LOOP // 2, LOOP - 1)}
    assert d[0] @ d[LOOP - 1] > 0.85
    assert d[0] @ d[LOOP - 1] > d[0] @ d[LOOP // 2] + 0.2


def test_refine_pair_corrects_a_perturbed_hypothesis(demo_frames):
    a, b = demo_frames[0], demo_frames[8]
    gt = np.linalg.inv(a.gt_pose) @ b.gt_pose
    nudge = np.eye(4)
    c, s = np.cos(np.radians(1.5)), np.sin(np.radians(1.5))
    nudge[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    nudge[:3, 3] = [0.03, -0.02, 0.02]
    start = nudge @ gt
    refined = RgbdFrontend().refine_pair(a, b, start)
    assert refined is not None and refined.confidence > 0.3
    assert np.linalg.norm(refined.T_ab[:3, 3] - gt[:3, 3]) < 0.003
    assert rotation_deg(np.linalg.inv(gt) @ refined.T_ab) < 0.2
    assert np.linalg.norm(start[:3, 3] - gt[:3, 3]) > 0.03  # the start really was off
