"""Tests of the ``perturbed`` frontend: seeded determinism, the scale model, resets, drops, pair scale."""

from __future__ import annotations

import numpy as np
import pytest

import frontends
from frontends.base import Frontend
from frontends.perturbed import PerturbedConfig, PerturbedFrontend
from slam.config import load_run_config
from slam.errors import ConfigError
from slam.types import Frame, FrontendOutput, PairEstimate


class LineFrontend(Frontend):
    """Metric toy frontend: the camera moves 0.1 m along x per frame; a flat wall 2 m ahead."""

    def __init__(self):
        self.resets = 0
        self.reset()

    def reset(self):
        self.start = None
        self.resets += 1
        self.segment = self.resets - 1

    def step(self, frame):
        if self.start is None:
            self.start = frame.index
        pose = np.eye(4)
        pose[0, 3] = 0.1 * (frame.index - self.start)
        points = np.zeros((6, 8, 3), np.float32)
        points[..., 2] = 2.0
        return FrontendOutput(pose=pose, points=points, confidence=np.ones((6, 8), np.float32), K=np.eye(3),
                              segment=self.segment, metric=True)

    def pair(self, a, b):
        T = np.eye(4)
        T[0, 3] = 0.1 * (b.index - a.index)
        pts = np.full((6, 8, 3), 2.0, np.float32)
        return PairEstimate(T_ab=T, confidence=1.0, points_a=pts, points_b=pts)


def frames(n: int) -> list[Frame]:
    return [Frame(index=i, timestamp=float(i), rgb=np.zeros((6, 8, 3), np.uint8)) for i in range(n)]


def run(cfg: PerturbedConfig, n: int = 40):
    fe = PerturbedFrontend(cfg, inner=LineFrontend())
    outs = [fe.step(f) for f in frames(n)]
    fs = frames(6)
    pairs = [fe.pair(fs[0], fs[k]) for k in range(1, 6)]
    return outs, pairs


NOISY = PerturbedConfig(seed=3, scale_drift=0.001, scale_walk=0.01, segment_log_scale=0.3, rotation_noise_deg=0.5,
                        translation_noise=0.01, pair_log_scale=0.2, reset_every=15, drop_probability=0.2)


def test_a_frame_gets_the_same_draws_after_a_reset():
    cfg = PerturbedConfig(**{**NOISY.__dict__, "reset_every": 0, "drop_probability": 0.0, "segment_log_scale": 0.0})
    fe = PerturbedFrontend(cfg, inner=LineFrontend())
    first = [fe.step(f) for f in frames(6)]
    fe.reset()
    again = [fe.step(f) for f in frames(6)]
    for a, b in zip(first, again):
        np.testing.assert_allclose(a.pose, b.pose)
        assert b.segment == a.segment + 1


def test_same_seed_same_stream_other_seed_other_stream():
    a, pa = run(NOISY)
    b, pb = run(NOISY)
    c, pc = run(PerturbedConfig(**{**NOISY.__dict__, "seed": 4}))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.pose, y.pose)
        np.testing.assert_array_equal(x.points, y.points)
        assert x.segment == y.segment and x.stats.get("dropped") == y.stats.get("dropped")
    assert [p.info["perturbed_scale"] for p in pa] == [p.info["perturbed_scale"] for p in pb]
    assert any(not np.allclose(x.pose, z.pose) for x, z in zip(a, c))
    assert [p.info["perturbed_scale"] for p in pa] != [p.info["perturbed_scale"] for p in pc]


def test_scale_drift_applies_to_steps_and_pointmaps():
    outs, _ = run(PerturbedConfig(scale_drift=0.01), n=11)
    assert all(not o.metric for o in outs)
    for i, o in enumerate(outs):
        s = np.exp(0.01 * i)
        assert o.stats["perturbed_scale"] == pytest.approx(s, rel=1e-5)
        np.testing.assert_allclose(o.points[..., 2], 2.0 * s, rtol=1e-5)
    # reported position: sum of the metric 0.1 m steps, each in the unit of its frame
    expected = sum(0.1 * np.exp(0.01 * i) for i in range(1, 11))
    assert outs[-1].pose[0, 3] == pytest.approx(expected, rel=1e-9)


def test_resets_start_segments_and_drops_repeat_the_previous_output():
    outs, _ = run(PerturbedConfig(reset_every=10, segment_log_scale=0.5, seed=1), n=30)
    assert [o.segment for o in outs] == [0] * 10 + [1] * 10 + [2] * 10
    np.testing.assert_allclose(outs[10].pose[:3, 3], 0.0)  # a new segment starts a new world frame
    scales = {o.segment: o.stats["perturbed_scale"] for o in outs}
    assert len(set(scales.values())) == 3 and all(np.exp(-0.5) <= s <= np.exp(0.5) for s in scales.values())
    outs, _ = run(PerturbedConfig(drop_probability=0.5, seed=2), n=30)
    dropped = [i for i, o in enumerate(outs) if o.stats["dropped"]]
    assert 5 < len(dropped) < 25
    for i in dropped:
        np.testing.assert_array_equal(outs[i].pose, outs[i - 1].pose)
        assert outs[i].pose_confidence < outs[i - 1].pose_confidence


def test_pair_scale_is_random_within_bounds_and_consistent():
    _, pairs = run(PerturbedConfig(pair_log_scale=0.2, seed=5))
    fe = PerturbedFrontend(PerturbedConfig(pair_log_scale=0.2, seed=5), inner=LineFrontend())
    assert fe.pair(*frames(2)).info["perturbed_scale"] == fe.pair(*frames(2)).info["perturbed_scale"]
    factors = [p.info["perturbed_scale"] for p in pairs]
    assert len(set(factors)) == len(factors)
    for k, (p, f) in enumerate(zip(pairs, factors), start=1):
        assert np.exp(-0.2) <= f <= np.exp(0.2)
        assert p.T_ab[0, 3] == pytest.approx(0.1 * k * f)
        np.testing.assert_allclose(p.points_a[..., 2], 2.0 * f, rtol=1e-6)


def test_registered_and_configurable_by_name(tmp_path):
    assert "perturbed" in frontends.FRONTENDS
    cfg = load_run_config(overrides=["frontend=perturbed", "frontend.perturbed.inner=rgbd",
                                     "frontend.perturbed.inner_options={downsample: 4}",
                                     "frontend.perturbed.scale_drift=0.002"])
    fe = frontends.create("perturbed", cfg.frontend.options())
    assert fe.cfg.scale_drift == 0.002 and fe.inner.name == "rgbd" and fe.inner.cfg.downsample == 4
    with pytest.raises(ConfigError, match="drop_probability"):
        PerturbedFrontend(PerturbedConfig(drop_probability=1.5), inner=LineFrontend())
    with pytest.raises(ConfigError, match="unknown frontend"):
        PerturbedFrontend(PerturbedConfig(inner="nope"))
