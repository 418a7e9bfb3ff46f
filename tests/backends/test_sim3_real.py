"""The up-to-scale (Sim(3)) path on real 7-Scenes frames made up-to-scale by the ``perturbed`` frontend:
loop verification with a known relative scale, and segment links across resets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from backends import BackendConfig, SlamBackend
from backends.config import KeyframeConfig, LoopClosureConfig
from backends.keyframer import Keyframer
from backends.loop_closure import LoopCloser, relative_scale
from frontends import create
from frontends.perturbed import PerturbedConfig, PerturbedFrontend
from slam import geometry
from slam.datasets import open_dataset
from slam.datasets.base import DatasetConfig
from tests.conftest import SHARED

KITCHEN = SHARED / "data" / "sevenscenes_redkitchen_stride4"
needs_kitchen = pytest.mark.skipif(not KITCHEN.is_dir(), reason=f"7-Scenes sequence not found at {KITCHEN}")
#: a revisit: frames 60 and 238 are 13 cm / 15 degrees apart (reference poses); frame 120 is 0.8 m away
A, B, FAR = 60, 238, 120


def frame(index: int):
    return next(iter(open_dataset(DatasetConfig(path=str(KITCHEN), first=index, last=index))))


@pytest.fixture(scope="module")
def kitchen():
    rgbd = create("rgbd")
    frames = {i: frame(i) for i in (A, B, FAR)}
    outs = {}
    for i, f in frames.items():
        rgbd.reset()
        outs[i] = rgbd.step(f)
    return rgbd, frames, outs


def keyframe(kf_id: int, frame, out, unit: float):
    """A keyframe of an up-to-scale stream whose unit is ``unit`` x metres."""
    out = dataclasses.replace(out, points=out.points * np.float32(unit), metric=False)
    return Keyframer(KeyframeConfig(stride=4)).make_keyframe(kf_id, frame, out, np.eye(4))


@needs_kitchen
def test_unit_fit_recovers_a_known_scale(kitchen):
    _, frames, outs = kitchen
    kf = keyframe(0, frames[A], outs[A], 1.37)
    f, spread = relative_scale(kf.points, kf.confidence, outs[A].points, outs[A].confidence)
    assert f == pytest.approx(1.37, rel=1e-3) and spread < 1e-3


@needs_kitchen
def test_sim3_loop_verification_on_a_real_pair_with_known_scale(kitchen):
    rgbd, frames, outs = kitchen
    s_a, s_b = 0.8, 1.25  # stream units of the two keyframes: b's depths are 1.5625x a's per metre
    kf_a, kf_b = keyframe(0, frames[A], outs[A], s_a), keyframe(1, frames[B], outs[B], s_b)
    wrapper = PerturbedFrontend(PerturbedConfig(pair_log_scale=0.2, seed=0), inner=rgbd)
    closer = LoopCloser(LoopClosureConfig(), KeyframeConfig(stride=4), wrapper, use_sim3=True)
    res = closer.verify(kf_a, kf_b)  # no graph prior: the pair estimate at a random scale
    assert res.accepted, res.reason
    assert float(geometry.similarity_scale(res.T_ab)) == pytest.approx(s_a / s_b, rel=0.03)
    T_gt = geometry.relative_pose(frames[A].gt_pose, frames[B].gt_pose)
    # the same pair as metric keyframes through the SE(3) path: accepted too, and the two agree
    metric = LoopCloser(LoopClosureConfig(), KeyframeConfig(stride=4), rgbd, use_sim3=False)
    kf_am = dataclasses.replace(keyframe(0, frames[A], outs[A], 1.0), metric=True)
    kf_bm = dataclasses.replace(keyframe(1, frames[B], outs[B], 1.0), metric=True)
    res_m = metric.verify(kf_am, kf_bm)
    assert res_m.accepted
    print("sim3 t (m)", res.T_ab[:3, 3] / s_a, "metric t", res_m.T_ab[:3, 3], "reference t", T_gt[:3, 3])
    assert np.linalg.norm(res.T_ab[:3, 3] / s_a - T_gt[:3, 3]) < 0.05  # metres (the reference: ~1-2 cm)
    assert np.linalg.norm(res.T_ab[:3, 3] / s_a - res_m.T_ab[:3, 3]) < 0.05
    # a graph prior with the right pose but a 30 % wrong scale: never accepted at that scale
    wrong = T_gt.copy()
    wrong[:3, 3] *= s_a
    wrong[:3, :3] *= 1.3 * s_a / s_b
    res = closer.verify(kf_a, kf_b, T_prior=wrong, allow_pair=False)
    assert not res.accepted or float(geometry.similarity_scale(res.T_ab)) == pytest.approx(s_a / s_b, rel=0.03)
    # wrong hypotheses (the pose off by a quarter of the scene depth sideways, or the scale off by 40 %)
    # are rejected, and another candidate is either rejected or put where the reference says
    off = wrong.copy()
    off[:3, :3] = T_gt[:3, :3] * s_a / s_b
    off[:3, 3] += np.array([0.5, 0.0, 0.0]) * s_a
    assert not closer.verify(kf_a, kf_b, T_prior=off, allow_pair=False).accepted
    kf_far = keyframe(2, frames[FAR], outs[FAR], 1.1)
    res = closer.verify(kf_a, kf_far)
    T_far = geometry.relative_pose(frames[A].gt_pose, frames[FAR].gt_pose)
    assert not res.accepted or (np.linalg.norm(res.T_ab[:3, 3] / s_a - T_far[:3, 3]) < 0.05
                                and float(geometry.similarity_scale(res.T_ab)) == pytest.approx(s_a / 1.1, rel=0.03))
