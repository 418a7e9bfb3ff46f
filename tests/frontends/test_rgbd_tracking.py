"""Tracking-failure detection and recovery of the rgbd frontend, and the start-up data check."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import frontends.rgbd.frontend as rgbd_frontend
from frontends.rgbd import RgbdConfig, RgbdFrontend
from frontends.rgbd.frontend import rotation_deg
from frontends.rgbd.odometry import OdometryEstimate
from slam.datacheck import check_rgbd, registration_score
from slam.synthetic import DemoRenderer, camera_path
from slam.types import Frame


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    """The first 10 rendered 320x240 frames of the demo loop (150 frames per turn)."""
    renderer = DemoRenderer((240, 320), seed=0)
    poses = camera_path(150)
    out = []
    for i in range(10):
        rgb, depth = renderer.render(poses[i])
        out.append(Frame(index=i, timestamp=i / 30, rgb=rgb, depth=depth, K=renderer.K, gt_pose=poses[i]))
    return out


def corrupt_once(monkeypatch, at_call: int, offset: np.ndarray) -> None:
    """Make the ``at_call``-th odometry solve (0-based) of the frontend return a pose moved by ``offset`` (m)
    with a perfect fitness: a diverged solve that looks fine by its own figures."""
    real = rgbd_frontend.estimate_motion
    calls = {"n": 0}

    def fake(*args, **kwargs):
        est = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] - 1 == at_call:
            T = est.T_target_source.copy()
            T[:3, 3] += offset
            return OdometryEstimate(T, 1.0, est.residual, True)
        return est

    monkeypatch.setattr(rgbd_frontend, "estimate_motion", fake)


def relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.inv(a) @ b


def test_injected_bad_step_is_detected_and_recovered_by_pnp(frames, monkeypatch):
    clean = [o.pose for o in map(RgbdFrontend().step, frames[:7])]
    corrupt_once(monkeypatch, at_call=5, offset=np.array([1.0, 0.0, 0.0]))  # the solve of frame 6
    fe = RgbdFrontend()
    outs = [fe.step(f) for f in frames[:7]]
    bad = outs[6].stats
    assert "off the predicted motion" in bad["failure_reason"]
    assert bad["odometry_recovered"] == 1 and bad["odometry_failed"] == 0
    assert all(o.stats["odometry_failed"] == 0 and o.stats["odometry_recovered"] == 0 for o in outs[:6])
    err = relative(clean[6], outs[6].pose)
    assert np.linalg.norm(err[:3, 3]) < 0.01 and rotation_deg(err) < 0.5  # the 1 m error is gone


def test_injected_bad_step_without_recovery_keeps_the_prediction(frames, monkeypatch):
    corrupt_once(monkeypatch, at_call=5, offset=np.array([0.0, 1.0, 0.0]))
    fe = RgbdFrontend(RgbdConfig(recover_pnp=False))
    outs = [fe.step(f) for f in frames[:8]]
    assert outs[6].stats["odometry_failed"] == 1 and outs[6].stats["new_reference"]  # re-anchored
    velocity = relative(outs[4].pose, outs[5].pose)
    np.testing.assert_allclose(outs[6].pose, outs[5].pose @ velocity, atol=1e-9)
    assert outs[6].pose_confidence == RgbdConfig().failure_confidence
    # tracking goes on from the re-anchored frame with the true motion
    assert outs[7].stats["odometry_failed"] == 0 and outs[7].stats["odometry_fitness"] > 0.5


def test_failure_reasons(frames):
    fe = RgbdFrontend()
    fe.step(frames[0])
    guess = np.eye(4)
    ok = OdometryEstimate(np.eye(4), 0.9, 0.01, True)
    assert fe.failure_reason(ok, guess) == ""
    assert fe.failure_reason(OdometryEstimate(np.eye(4), 0.0, float("inf"), False), guess) == "solve failed"
    assert fe.failure_reason(OdometryEstimate(np.eye(4), 0.1, 0.01, True), guess).startswith("fitness")
    turned = np.eye(4)
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    turned[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    assert "turned" in fe.failure_reason(OdometryEstimate(turned, 0.9, 0.01, True), guess)


def test_data_check_warns_when_options_cut_most_depth(frames, caplog):
    f = frames[0]
    far = Frame(0, 0.0, f.rgb, f.depth * 3.0, f.K)  # the same view of a three times larger room
    assert np.median(far.depth[far.depth > 0]) > 4.0
    with caplog.at_level(logging.WARNING):
        RgbdFrontend(RgbdConfig(depth_max=4.0)).step(far)
    cut = [r for r in caplog.records if "keep only" in r.getMessage()]
    assert len(cut) == 1 and "depth_max=4.0" in cut[0].getMessage() and "\n" not in cut[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        fe = RgbdFrontend()  # default: no depth cut
        fe.step(far)
    assert not [r for r in caplog.records if "data check" in r.getMessage()]
    assert fe.data_report.kept_fraction > 0.9 and fe.data_report.registered


def test_data_check_flags_misregistered_colour_and_depth(frames, caplog):
    f = frames[0]
    assert registration_score(f.rgb, f.depth) == pytest.approx(1.0)
    shifted = np.zeros_like(f.depth)
    shifted[:, 6:] = f.depth[:, :-6]  # depth 6 px to the right of the colour
    assert registration_score(f.rgb, shifted) < 0.9
    with caplog.at_level(logging.WARNING):
        report = check_rgbd(f.rgb, shifted)
    assert not report.registered
    assert any("pixel-aligned" in r.getMessage() for r in caplog.records)
