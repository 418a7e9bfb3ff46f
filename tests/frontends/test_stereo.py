"""Stereo frontend: accuracy on a rendered stereo KITTI sequence with exact truth, failure detection, pairs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import frontends
from frontends.stereo import StereoConfig
from slam.datasets import DatasetConfig, open_dataset
from slam.errors import ConfigError, DatasetError
from slam.evaluation import evaluate
from slam.geometry import relative_pose
from slam.trajectory import Trajectory
from tests.frontends.stereo_scene import render_stereo_kitti

N_FRAMES = 14
BASELINE = 0.12


@pytest.fixture(scope="module")
def stereo_seq(tmp_path_factory) -> Path:
    return render_stereo_kitti(tmp_path_factory.mktemp("stereo_kitti"), n_frames=N_FRAMES, baseline=BASELINE)


@pytest.fixture(scope="module")
def frames(stereo_seq):
    return list(open_dataset(DatasetConfig(path=str(stereo_seq))))


def run_frontend(frames, cfg: StereoConfig | None = None):
    fe = frontends.create("stereo", cfg)
    outs = [fe.step(f) for f in frames]
    return fe, outs


def test_dataset_loads_the_colour_pair(stereo_seq, frames):
    ds = open_dataset(DatasetConfig(path=str(stereo_seq)))
    assert ds.camera == "image_2" and ds.is_stereo and ds.baseline == pytest.approx(BASELINE)
    assert len(frames) == N_FRAMES
    f = frames[0]
    assert f.right is not None and f.right.shape == f.rgb.shape and f.baseline == pytest.approx(BASELINE)
    assert not np.array_equal(f.rgb, f.right)  # two different viewpoints
    mono = open_dataset(DatasetConfig(path=str(stereo_seq), stereo=False))
    assert next(iter(mono)).right is None


def test_tracks_the_rendered_sequence_metrically(frames):
    _, outs = run_frontend(frames)
    est = Trajectory(np.array([f.timestamp for f in frames]), np.stack([o.pose for o in outs]))
    gt = Trajectory(est.timestamps, np.stack([f.gt_pose for f in frames]))
    m = evaluate(est, gt)
    path = m["gt_path_length_m"]
    assert path > 0.8
    assert m["ate_rmse_se3"] < 0.01 * path + 0.005  # metric: no scale correction needed
    assert abs(m["sim3_scale"] - 1.0) < 0.03
    assert all(o.metric and not o.stats["tracking_failed"] for o in outs)
    o = outs[-1]
    h, w = o.working_size
    assert (h, w) == (frames[0].rgb.shape[0] // 2, frames[0].rgb.shape[1] // 2)
    assert o.colors.shape == (h, w, 3) and o.confidence.shape == (h, w)
    assert o.descriptor is not None and np.linalg.norm(o.descriptor) == pytest.approx(1.0, abs=1e-5)
    # the dense pointmap agrees with the rendered truth: depth of confident points within a few per cent
    valid = o.confidence > 0.5
    assert valid.mean() > 0.5
    assert 0.3 < float(np.median(o.points[valid][:, 2])) < 5.0


def test_tracking_failure_is_detected_and_recovered(frames):
    fe = frontends.create("stereo")
    outs = [fe.step(f) for f in frames[:6]]
    blank = replace(frames[6], rgb=np.full_like(frames[6].rgb, 128), right=np.full_like(frames[6].right, 128))
    lost = fe.step(blank)
    assert lost.stats["tracking_failed"] and "failure_reason" in lost.stats
    assert lost.pose_confidence < 0.5 and lost.confidence.max() <= StereoConfig().failure_confidence
    # constant-velocity prediction: the lost frame continues the last step
    step = relative_pose(outs[4].pose, outs[5].pose)
    assert lost.pose == pytest.approx(outs[5].pose @ step, abs=1e-9)
    assert lost.segment == outs[0].segment  # recovered in place, no reset
    # the next real frame is tracked again (against the predicted keyframe: stereo re-initialises)
    back = fe.step(frames[7])
    assert not back.stats["tracking_failed"] and back.stats["pnp_inliers"] >= StereoConfig().min_inliers


def test_solution_far_from_the_prediction_is_a_failure(frames):
    """The jump test compares PnP with the constant-velocity prediction: with a (far too) strict threshold
    the same frames that track under the default fail, and keep the prediction."""
    for cfg, should_fail in ((StereoConfig(), False), (StereoConfig(max_step_depth=1e-6), True)):
        fe = frontends.create("stereo", cfg)
        outs = [fe.step(f) for f in frames[:3]]
        assert outs[2].stats["tracking_failed"] is should_fail
        if should_fail:
            assert "prediction" in outs[2].stats["failure_reason"]
            step = relative_pose(outs[0].pose, outs[1].pose)
            assert outs[2].pose == pytest.approx(outs[1].pose @ step, abs=1e-9)


def test_pair_recovers_the_relative_pose(frames):
    fe = frontends.create("stereo")
    a, b = frames[0], frames[5]
    est = fe.pair(a, b)
    truth = relative_pose(a.gt_pose, b.gt_pose)
    assert est.confidence > 0.5 and est.info["pnp_inliers"] >= StereoConfig().pair_min_inliers
    assert np.linalg.norm(est.T_ab[:3, 3] - truth[:3, 3]) < 0.02
    assert est.points_a.shape == est.points_b.shape
    unrelated = fe.pair(a, replace(b, rgb=np.full_like(b.rgb, 90), right=np.full_like(b.right, 90)))
    assert unrelated.confidence == 0.0


def test_frames_without_a_stereo_pair_are_rejected(frames):
    fe = frontends.create("stereo")
    with pytest.raises(DatasetError, match="stereo pair"):
        fe.step(replace(frames[0], right=None, baseline=None))


def test_bad_option_is_a_config_error():
    with pytest.raises(ConfigError, match="block_size"):
        frontends.create("stereo", StereoConfig(block_size=4))


@pytest.mark.slow
def test_cli_run_writes_kitti_outputs(stereo_seq, tmp_path):
    from slam.cli import main

    out = tmp_path / "run"
    rc = main(["run", "--data", str(stereo_seq), "frontend=stereo", "backend=odometry", f"output.dir={out}",
               "viz.mode=off", "backend.sync=true"])
    assert rc in (0, None)
    kitti = np.loadtxt(out / "trajectory.kitti")
    assert kitti.shape == (N_FRAMES, 12)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["ate_rmse_se3"] < 0.02 and metrics["rpe_10m_t_err_pct"] is None  # path < 10 m
    import open3d as o3d

    colours = np.asarray(o3d.io.read_point_cloud(str(out / "map.ply")).colors)
    assert len(colours) > 1000
    assert np.abs(colours[:, 0] - colours[:, 1]).mean() > 0.01  # coloured (not grey) from the colour pair


def test_grey_descriptor_ignores_the_constant_colour_part(frames):
    from frontends.rgbd.descriptor import global_descriptor
    from frontends.stereo.frontend import stereo_descriptor

    grey = [np.repeat(f.rgb.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2) for f in (frames[0], frames[-1])]
    a, b = (stereo_descriptor(g, (16, 12)) for g in grey)
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5) and not a[-36:].any()
    raw = [global_descriptor(g, (16, 12)) for g in grey]
    assert float(a @ b) < float(raw[0] @ raw[1])  # the shared constant no longer inflates the similarity
    colour = frames[0].rgb
    assert np.array_equal(stereo_descriptor(colour, (16, 12)), global_descriptor(colour, (16, 12)))
