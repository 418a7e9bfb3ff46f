"""The reference-free figures of ``tools/eval_backend_icl.py``: both can fail, and both see a pose error.

On two overlapping ICL frames the reference relative pose scores low; moving the second camera by 2 cm along
the image plane raises the keypoint distance several-fold, and 2 cm along the optical axis the depth
consistency.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import ICL, load_tool, needs_icl


@pytest.fixture(scope="module")
def tool():
    return load_tool("eval_backend_icl")


@pytest.fixture(scope="module")
def frame_pair():
    from slam.datasets import open_dataset
    from slam.datasets.base import DatasetConfig

    frames = list(open_dataset(DatasetConfig(path=str(ICL), first=0, last=8, stride=8)))
    assert len(frames) == 2
    return frames


@needs_icl
def test_keypoint_distance_sees_a_slide(tool, frame_pair):
    import cv2

    from slam import geometry

    a, b = frame_pair
    sift = cv2.SIFT_create(4000)
    matches = tool.keypoint_matches(tool.keypoints_3d(a, sift), tool.keypoints_3d(b, sift))
    T_ab = geometry.relative_pose(a.gt_pose, b.gt_pose)
    good, n_good = tool.keypoint_distance(matches, T_ab)
    assert n_good >= tool.MIN_KEYPOINTS
    assert good < 0.005  # metres: the reference is good to a few mm between nearby frames

    slide = np.eye(4)
    slide[0, 3] = 0.02
    bad, _ = tool.keypoint_distance(matches, slide @ T_ab)
    assert bad > 3 * good and bad > 0.01

    depth_good, overlap = tool.depth_consistency(a, b, T_ab)
    assert overlap > 0.5 and depth_good < 0.005
    push = np.eye(4)
    push[2, 3] = 0.02
    depth_pushed, _ = tool.depth_consistency(a, b, push @ T_ab)
    assert depth_pushed > 3 * depth_good


@needs_icl
def test_backend_settings_follow_the_run_config_layers(tool):
    settings = tool.backend_settings(str(ICL), ["graph.max_residual=7"])
    assert settings["keyframe"]["stride"] == 2  # configs/frontends/rgbd.yaml
    assert settings["graph"]["max_residual"] == 7.0


def test_depth_noise_follows_the_sensor_model(tool):
    from slam.types import Frame

    depth = np.full((200, 300), 2.0, np.float32)
    depth[:, :10] = 0.0
    frame = Frame(index=0, timestamp=0.0, rgb=np.zeros((200, 300, 3), np.uint8), depth=depth)
    noisy = tool.add_depth_noise(frame, 2.0, np.random.default_rng(0))
    again = tool.add_depth_noise(frame, 2.0, np.random.default_rng(0))
    np.testing.assert_array_equal(noisy.depth, again.depth)  # seeded
    assert (noisy.depth[:, :10] == 0).all() and frame.depth[0, 20] == 2.0  # holes stay, input untouched
    expected = 2.0 * (0.0012 + 0.0019 * 1.6**2)
    measured = float(np.std(noisy.depth[:, 10:] - 2.0))
    assert measured == pytest.approx(expected, rel=0.03)


@needs_icl
def test_frontend_options_follow_the_run_config_layers(tool):
    cfg = tool.run_config(str(ICL), ["frontend.rgbd.method=icp", "graph.max_residual=7"])
    assert cfg.frontend.options().method == "icp"
    assert cfg.backend.graph.max_residual == 7.0
    assert tool.run_config(str(ICL), []).frontend.options().method == "auto"  # the RgbdConfig default


def test_quantize_depth_rounds_to_the_step_and_keeps_holes(tool):
    from slam.types import Frame

    depth = np.array([[0.0, 1.0004, 1.0006, 2.3449]], np.float32)
    frame = Frame(index=0, timestamp=0.0, rgb=np.zeros((1, 4, 3), np.uint8), depth=depth)
    out = tool.quantize_depth(frame, 0.001).depth
    np.testing.assert_allclose(out, [[0.0, 1.000, 1.001, 2.345]], atol=1e-6)
    assert frame.depth[0, 1] == np.float32(1.0004)  # input untouched


@needs_icl
def test_steps_report_distance_and_depth_consistency_of_consecutive_keyframes(tool, frame_pair):
    a, b = frame_pair
    scorer = tool._PairScorer.__new__(tool._PairScorer)  # steps() needs only the frames
    scorer.frames = [a, b]
    (ia, ib, distance, depth), = scorer.steps([a.gt_pose, b.gt_pose])
    assert (ia, ib) == (a.index, b.index)
    assert distance == pytest.approx(np.linalg.norm(a.gt_pose[:3, 3] - b.gt_pose[:3, 3]), abs=1e-9)
    assert depth < 0.002
    pushed = b.gt_pose.copy()
    pushed[:3, 3] += 0.02 * b.gt_pose[:3, 2]  # 2 cm along b's optical axis
    (_, _, distance_pushed, depth_pushed), = scorer.steps([a.gt_pose, pushed])
    assert depth_pushed > 3 * depth
    assert distance_pushed == pytest.approx(np.linalg.norm(a.gt_pose[:3, 3] - pushed[:3, 3]), abs=1e-9)


def test_keyframe_distance_is_zero_for_equal_poses_and_sees_one_moved_camera(tool):
    rng = np.random.default_rng(1)
    poses = {}
    for i in range(6):
        T = np.eye(4)
        T[:3, 3] = rng.normal(size=3)
        poses[10 * i] = T
    assert tool.keyframe_distance(poses, poses) == pytest.approx(0.0, abs=1e-9)
    moved = {i: T.copy() for i, T in poses.items()}
    moved[20][:3, 3] += [0.0, 0.0, 0.06]
    assert 0.5 < tool.keyframe_distance(moved, poses) < 6 / np.sqrt(6)  # cm; the SE(3) fit spreads part of it
    assert np.isnan(tool.keyframe_distance({0: np.eye(4)}, poses))  # fewer than 3 common frames


@needs_icl
def test_depth_optimum_puts_a_displaced_reference_camera_back(tool):
    """The depth optimum is found from the depth, not copied from the reference: with one keyframe's
    reference pose displaced by 3 cm, the optimum lands where it lands from the undisplaced reference."""
    import dataclasses

    from backends import BackendConfig, SlamBackend
    from frontends import create
    from slam.datasets import open_dataset
    from slam.datasets.base import DatasetConfig

    frames = list(open_dataset(DatasetConfig(path=str(ICL), first=0, last=60, stride=4)))
    settings = tool.backend_settings(str(ICL), [])
    frontend = create("rgbd", tool.run_config(str(ICL), []).frontend.options())
    backend = SlamBackend(BackendConfig.from_dict({**settings, "preset": "odometry", "sync": True}), frontend,
                          metric=True)
    for frame in frames:
        backend.process(frame, frontend.step(frame))
    backend.finalize()
    keyframes = backend.keyframes()
    backend.close()
    assert len(keyframes) >= 4
    truth = {kf.frame_index: kf.frame.gt_pose for kf in keyframes}
    middle = keyframes[len(keyframes) // 2]
    shifted = middle.frame.gt_pose.copy()
    shifted[:3, 3] += 0.03 * shifted[:3, 0]  # 3 cm along the camera's x axis
    displaced = [dataclasses.replace(kf, frame=dataclasses.replace(kf.frame, gt_pose=shifted))
                 if kf is middle else kf for kf in keyframes]

    optimum = tool.depth_optimum(displaced, settings)
    undisplaced = tool.depth_optimum(keyframes, settings)
    start = {kf.frame_index: kf.frame.gt_pose for kf in displaced}
    assert tool.keyframe_distance(start, truth) > 1.0  # cm
    assert tool.keyframe_distance(optimum, undisplaced) < 0.2
    moved_back = np.linalg.norm(optimum[middle.frame_index][:3, 3] - shifted[:3, 3])
    assert moved_back > 0.02  # metres: the displaced camera moved most of the way back
