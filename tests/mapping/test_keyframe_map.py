"""Keyframe point map: point selection, re-placement when poses (or the point scale) change, fusion."""

from __future__ import annotations

import dataclasses

import numpy as np

from mapping.config import MappingConfig
from mapping.keyframe_map import KeyframeMap, select_pixels
from tests.mapping.synthetic import frame_and_output, keyframe, pose


def _keyframes(n: int = 3, step: int = 5):
    kfs = []
    for i in range(n):
        T = pose(10.0 * i, (0.3 * i, 0.0, 0.1 * i))
        frame, out = frame_and_output(i * step, T)
        kfs.append(keyframe(i, frame, out, T))
    return kfs


def test_select_pixels_drops_invalid_low_confidence_and_far_points():
    points = np.ones((4, 4, 3), np.float32)
    points[0, 0] = np.nan
    points[0, 1, 2] = -1.0  # behind the camera
    points[0, 2, 2] = 10.0  # too far
    conf = np.full((4, 4), 2.0, np.float32)
    conf[1, 0] = 0.5  # below the threshold
    conf[1, 1] = 0.0  # invalid
    cfg = MappingConfig(min_confidence=1.0, max_depth=5.0, point_stride=1)
    kept = set(select_pixels(points, conf, cfg).tolist())
    assert kept == set(range(16)) - {0, 1, 2, 4, 5}
    strided = select_pixels(np.ones((4, 4, 3), np.float32), np.ones((4, 4)), MappingConfig(point_stride=2))
    assert strided.tolist() == [0, 2, 8, 10]


def test_world_points_follow_the_keyframe_pose():
    kf = _keyframes(1)[0]
    kmap = KeyframeMap(MappingConfig(voxel_size=0.0, point_stride=1))
    assert kmap.update([kf]) == ([0], [])
    before = kmap.world_points(0)
    cam = kf.points.reshape(-1, 3)
    cam = cam[cam[:, 2] > 0]
    assert len(before) == len(cam)  # no offer of the dense output: the keyframe's own points
    np.testing.assert_allclose(before, cam @ kf.pose[:3, :3].T + kf.pose[:3, 3], atol=1e-5)

    # the backend moves the keyframe: its points are re-placed by the new pose, nothing else changes
    correction = pose(15.0, (0.5, -0.2, 0.3))
    moved_kf = dataclasses.replace(kf, pose=correction @ kf.pose)
    version = kmap.version
    assert kmap.update([moved_kf]) == ([], [0])
    assert kmap.version > version
    after = kmap.world_points(0)
    assert np.linalg.norm(after - before, axis=1).min() > 0.1
    np.testing.assert_allclose(after, before @ correction[:3, :3].T + correction[:3, 3], atol=1e-4)
    # the same pose again is not a change
    assert kmap.update([moved_kf]) == ([], [])


def test_rescaled_points_are_taken_over():
    """Up-to-scale runs: the backend hands out rigid poses with rescaled points instead of a Sim(3) pose."""
    kf = _keyframes(1)[0]
    kmap = KeyframeMap(MappingConfig(voxel_size=0.0))
    kmap.update([kf])
    before = kmap.world_points(0)
    assert kmap.update([dataclasses.replace(kf, points=kf.points * np.float32(2.0))]) == ([], [0])
    centre = kf.pose[:3, 3]
    np.testing.assert_allclose(kmap.world_points(0) - centre, 2.0 * (before - centre), rtol=1e-4, atol=1e-4)


def test_sim3_pose_scales_the_points():
    kf = _keyframes(1)[0]
    sim = kf.pose.copy()
    sim[:3, :3] *= 3.0
    kmap = KeyframeMap(MappingConfig(voxel_size=0.0))
    kmap.update([dataclasses.replace(kf, pose=sim)])
    dist = np.linalg.norm(kmap.world_points(0) - sim[:3, 3], axis=1)
    np.testing.assert_allclose(dist, 3.0 * np.linalg.norm(kmap.clouds[0].points_cam, axis=1), rtol=1e-4)


def test_loop_closure_replaces_the_map():
    """A loop closure corrects the later keyframes: their points move, the first keyframe's do not."""
    kfs = _keyframes(4)
    kmap = KeyframeMap(MappingConfig(voxel_size=0.05))
    kmap.update(kfs)
    before = {k: kmap.world_points(k) for k in range(4)}
    fused_before = kmap.fused()[0]
    # loop correction: drift removed progressively along the chain
    corrected = [dataclasses.replace(kf, pose=pose(0.0, (-0.05 * kf.id, 0.02 * kf.id, 0.0)) @ kf.pose) for kf in kfs]
    added, moved = kmap.update(corrected)
    assert added == [] and moved == [1, 2, 3]
    np.testing.assert_array_equal(kmap.world_points(0), before[0])
    for k in (1, 2, 3):
        shift = np.linalg.norm(kmap.world_points(k) - before[k], axis=1)
        np.testing.assert_allclose(shift, np.linalg.norm([0.05 * k, 0.02 * k]), rtol=1e-4)
    fused_after = kmap.fused()[0]
    assert not np.array_equal(np.sort(fused_before, axis=0), np.sort(fused_after, axis=0))


def test_fused_map_is_voxel_downsampled_and_cached():
    kfs = _keyframes(3)
    kmap = KeyframeMap(MappingConfig(voxel_size=0.1))
    kmap.update(kfs)
    raw, _ = kmap.all_points()
    fused, colors = kmap.fused()
    assert 0 < len(fused) < 0.9 * len(raw)  # overlapping keyframes share voxels
    assert colors.dtype == np.uint8 and colors.shape == fused.shape
    # one point per 0.1 m voxel (Open3D's grid starts half a voxel below the minimum corner)
    cells = np.floor((fused - (raw.min(0) - 0.05)) / 0.1).astype(np.int64)
    assert len(np.unique(cells, axis=0)) >= 0.99 * len(cells)  # float32 rounding at cell borders
    assert kmap.fused()[0] is fused  # cached while nothing changed
    # the bounding box agrees with the raw points
    np.testing.assert_allclose(fused.min(0), raw.min(0), atol=0.1)
    np.testing.assert_allclose(fused.max(0), raw.max(0), atol=0.1)


def test_dense_output_is_used_at_the_keyframes_scale():
    """The frontend's full-size output of a keyframe's frame gives a denser map, at the keyframe's scale."""
    T = pose(10.0, (0.3, 0.0, 0.1))
    frame, out = frame_and_output(0, T, working=(120, 160))
    kf = keyframe(0, frame, out, T, stride=4)
    kf = dataclasses.replace(kf, points=kf.points * np.float32(0.5))  # backend scale 0.5 at creation
    cfg = MappingConfig(voxel_size=0.0, point_stride=2)
    coarse = KeyframeMap(cfg)
    coarse.update([kf])
    dense = KeyframeMap(cfg)
    dense.offer_dense(0, out)
    dense.update([kf])
    cloud = dense.clouds[0]
    assert cloud.dense and not coarse.clouds[0].dense
    assert len(cloud.base_points) > 3 * len(coarse.clouds[0].base_points)
    expected = out.points[::2, ::2].reshape(-1, 3)
    expected = expected[expected[:, 2] > 0] * 0.5
    np.testing.assert_allclose(cloud.points_cam, expected, rtol=1e-5, atol=1e-6)
    # a later rescale by the backend applies to the dense points as well
    dense.update([dataclasses.replace(kf, points=kf.points * np.float32(3.0))])
    np.testing.assert_allclose(cloud.points_cam, 3.0 * expected, rtol=1e-4, atol=1e-5)


def test_dense_output_of_another_size_is_ignored():
    T = pose()
    frame, out = frame_and_output(0, T, working=(120, 160))
    kf = keyframe(0, frame, out, T, stride=4)
    _, other = frame_and_output(0, T, working=(100, 150))
    kmap = KeyframeMap(MappingConfig(voxel_size=0.0))
    kmap.offer_dense(0, other)
    kmap.update([kf])
    assert not kmap.clouds[0].dense
