"""Tests of the depth noise model that weights point residuals of metric keyframes (global alignment and
loop refinement): noise grows as z^2, a far point weighs less than a near one, up-to-scale keyframes keep
scale-free widths."""

from __future__ import annotations

import numpy as np

from backends import global_alignment as ga
from backends.config import DepthNoiseConfig, GlobalAlignmentConfig
from backends.projective import associate, point_sigma, prepare_view
from slam import geometry
from slam.types import Keyframe


def _wall_keyframe(depth: float, metric: bool = True) -> Keyframe:
    """A 24x32 pointmap of a fronto-parallel wall at ``depth`` (camera frame)."""
    h, w = 24, 32
    K = np.array([[30.0, 0, 15.5], [0, 30.0, 11.5], [0, 0, 1]])
    v, u = np.mgrid[0:h, 0:w]
    pts = np.stack([(u - K[0, 2]) / K[0, 0] * depth, (v - K[1, 2]) / K[1, 1] * depth, np.full((h, w), depth)], -1)
    return Keyframe(id=0, frame_index=0, timestamp=0.0, points=pts.astype(np.float32),
                    confidence=np.ones((h, w), np.float32), colors=np.zeros((h, w, 3), np.uint8), K=K,
                    pose=np.eye(4), frontend_pose=np.eye(4), metric=metric)


def test_axial_noise_grows_with_the_square_of_depth():
    noise = DepthNoiseConfig(axial=1.4e-3, lateral=0.0)
    s1, s2, s4 = point_sigma(np.array([1.0, 2.0, 4.0]), noise)
    assert np.isclose(s1, 1.4e-3)
    assert np.isclose(s2 / s1, 4.0) and np.isclose(s4 / s1, 16.0)
    # the lateral term alone grows linearly
    lat = point_sigma(np.array([1.0, 3.0]), DepthNoiseConfig(axial=0.0, lateral=1e-3))
    assert np.isclose(lat[1] / lat[0], 3.0)


def test_far_point_weighs_less_than_near_point():
    noise = DepthNoiseConfig()
    near, far = _wall_keyframe(1.0), _wall_keyframe(4.0)
    # a wall seen from the same camera offset by 1 mm along the view: a real correspondence per point
    T = geometry.make_sim3(np.eye(3), [0.0, 0.0, 0.001])
    info = []
    for kf in (near, far):
        view = prepare_view(kf, 5000, 0.0, noise)
        c = associate(view, view, T, np.eye(4), 0.1)
        assert len(c) > 100 and c.var is not None
        info.append(float(np.median(1.0 / c.var)))  # information of the residual
    # both points of a residual at 4x the depth: 16x the axial sigma, ~256x less information
    assert info[0] > 100 * info[1]
    assert np.isclose(info[0] / info[1], (point_sigma(4.0, noise) / point_sigma(1.0, noise)) ** 2, rtol=0.05)


def test_up_to_scale_keyframes_carry_no_noise_model():
    view = prepare_view(_wall_keyframe(2.0, metric=False), 5000, 0.0, DepthNoiseConfig())
    assert view.sigma is None
    assert prepare_view(_wall_keyframe(2.0), 5000, 0.0, DepthNoiseConfig(enabled=False)).sigma is None
    c = associate(view, view, np.eye(4), np.eye(4), 0.1)
    assert c.var is None


def test_noisy_far_points_pull_alignment_less_than_near_points():
    """Two walls, near (1 m) and far (4 m), in one keyframe pair: the far wall's depths carry a 2 cm bias
    (within its noise, far outside the near wall's). The noise model follows the near wall; scale-free
    widths (relative to depth) are pulled further by the far wall."""
    rng = np.random.default_rng(0)
    a = _wall_keyframe(1.0)
    pts = a.points.copy()
    pts[:, 16:] *= 4.0  # right half: far wall
    a.points = pts
    b = Keyframe(**{**a.__dict__, "id": 1})
    pb = pts.copy()
    pb[:, 16:, 2] += 0.02  # far wall's depths biased by 2 cm in b
    pb[:, :16, 2] += rng.normal(0, 1e-4, pb[:, :16, 2].shape)
    b.points = pb.astype(np.float32)
    moved = {}
    for enabled in (True, False):
        cfg = GlobalAlignmentConfig(iterations=8, max_points=5000, max_distance=0.05, prior_weight=0.0,
                                    depth_noise=DepthNoiseConfig(enabled=enabled))
        T, _ = ga.align_pair(a, b, np.eye(4), cfg, 0.0, use_sim3=False)
        moved[enabled] = abs(float(T[2, 3]))
    assert moved[True] < 0.5 * moved[False]
    assert moved[True] < 0.004
