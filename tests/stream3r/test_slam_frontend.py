"""The ``stream3r`` SLAM frontend: preprocessing, camera conversions, segments, ``pair()``, the torch-free
registration, and ``slam run`` end to end on an image folder and a KITTI layout with the tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from frontends.stream3r.preprocess import preprocess_frame, working_geometry
from slam.geometry import inverse_pose
from slam.trajectory import read_kitti, read_tum
from slam.types import Frame

REPO = Path(__file__).resolve().parents[2]


def slam(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "slam.cli", *args], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=1200)


def frames(n: int = 4, size: tuple[int, int] = (60, 80)) -> list[Frame]:
    rng = np.random.default_rng(5)
    base = rng.integers(0, 255, (size[0], size[1] + 3 * n, 3), dtype=np.uint8)
    K = np.array([[70.0, 0, 40], [0, 70.0, 30], [0, 0, 1]])
    return [Frame(index=i, timestamp=0.1 * i, rgb=np.ascontiguousarray(base[:, 3 * i: 3 * i + size[1]]), K=K)
            for i in range(n)]


def test_working_geometry_follows_the_official_rule():
    g = working_geometry((480, 640))
    assert g.resized_size == (392, 518) and g.out_size == (392, 518) and g.crop_top == 0
    portrait = working_geometry((640, 480))  # 686 rows -> centre 518
    assert portrait.resized_size == (686, 518) and portrait.out_size == (518, 518) and portrait.crop_top == 84
    assert working_geometry((35, 518)).resized_size == (28, 518)  # round(2.5) = 2 (banker's rounding)
    assert working_geometry((21, 518)).resized_size == (28, 518)  # round(1.5) = 2
    with pytest.raises(ValueError):
        working_geometry((480, 640), width=500)


def test_preprocess_is_pil_bicubic_in_unit_range():
    rgb = frames(1, (48, 64))[0].rgb
    pre = preprocess_frame(rgb, width=84)
    ref = np.asarray(Image.fromarray(rgb).resize((84, 56), Image.Resampling.BICUBIC))
    assert pre.tensor.shape == (1, 3, 56, 84) and pre.tensor.dtype == torch.float32
    np.testing.assert_array_equal(pre.rgb, ref)
    torch.testing.assert_close(pre.tensor, torch.from_numpy(ref.copy()).permute(2, 0, 1)[None].float() / 255, rtol=0, atol=0)


@pytest.fixture(scope="module")
def frontend(tiny_model_dir):
    from frontends.base import create
    from frontends.stream3r.slam_frontend import Stream3rFrontendConfig

    fe = create("stream3r", Stream3rFrontendConfig(checkpoint=str(tiny_model_dir), width=84, mode="window", window=2))
    yield fe
    fe.close()


def test_step_outputs_are_consistent(frontend, tiny_net):
    from frontends.stream3r.cameras import extrinsic_from_pose_enc, intrinsics_from_pose_enc
    from slam.pointmaps import backproject_depth

    frontend.reset()
    seq = frames(4)
    outs = [frontend.step(f) for f in seq]
    session = tiny_net.session(mode="window", window=2)
    for f, out in zip(seq, outs):
        ref = session.step(preprocess_frame(f.rgb, 84).tensor)
        pose_enc = ref["pose_enc"][0, 0].numpy()
        np.testing.assert_allclose(out.pose, inverse_pose(extrinsic_from_pose_enc(pose_enc)), atol=1e-9)
        K = intrinsics_from_pose_enc(pose_enc, (56, 84))
        np.testing.assert_allclose(out.K, K)
        np.testing.assert_array_equal(out.points, backproject_depth(ref["depth"][0, 0, ..., 0].numpy(), K))
        np.testing.assert_array_equal(out.confidence, ref["depth_conf"][0, 0].numpy())
        assert out.points.shape == (56, 84, 3) and out.colors.shape == (56, 84, 3) and out.metric is False
        assert out.descriptor is not None and abs(np.linalg.norm(out.descriptor) - 1) < 1e-5
        assert out.K[0, 2] == 42.0 and out.K[1, 2] == 28.0  # principal point at (W/2, H/2)
    assert [o.segment for o in outs] == [0, 0, 0, 0]


def test_segments_on_reset_and_reset_every(tiny_model_dir, frontend):
    from frontends.base import create
    from frontends.stream3r.slam_frontend import Stream3rFrontendConfig

    seq = frames(3)
    frontend.reset()
    first = frontend.step(seq[0]).segment
    frontend.reset()
    assert frontend.step(seq[1]).segment == first + 1
    fe = create("stream3r", Stream3rFrontendConfig(checkpoint=str(tiny_model_dir), width=84, reset_every=2))
    outs = [fe.step(f) for f in frames(5)]
    assert [o.segment for o in outs] == [0, 0, 1, 1, 2]
    fresh = create("stream3r", Stream3rFrontendConfig(checkpoint=str(tiny_model_dir), width=84))
    np.testing.assert_array_equal(fresh.step(frames(5)[4]).pose, outs[4].pose)  # a segment starts afresh


def test_calibrated_uses_the_frame_intrinsics(tiny_model_dir):
    from frontends.base import create
    from frontends.stream3r.slam_frontend import Stream3rFrontendConfig

    fe = create("stream3r", Stream3rFrontendConfig(checkpoint=str(tiny_model_dir), width=84, calibrated=True))
    f = frames(1)[0]
    out = fe.step(f)
    np.testing.assert_allclose(out.K, preprocess_frame(f.rgb, 84).transform.K_to_output(f.K))
    with pytest.raises(Exception, match="no intrinsics"):
        fe.step(Frame(index=1, timestamp=0.1, rgb=f.rgb))


def test_pair_is_a_fresh_two_frame_session(frontend, tiny_net):
    from frontends.stream3r.cameras import pose_from_pose_enc

    a, b = frames(2)
    before = frontend.engine.session.cache_lengths
    est = frontend.pair(a, b)
    assert frontend.engine.session.cache_lengths == before  # stream untouched
    session = tiny_net.session(mode="causal")
    T_wa = pose_from_pose_enc(session.step(preprocess_frame(a.rgb, 84).tensor)["pose_enc"][0, 0].numpy())
    T_wb = pose_from_pose_enc(session.step(preprocess_frame(b.rgb, 84).tensor)["pose_enc"][0, 0].numpy())
    np.testing.assert_allclose(est.T_ab, inverse_pose(T_wa) @ T_wb, atol=1e-9)
    assert est.points_a.shape == est.points_b.shape == (56, 84, 3) and 0 <= est.confidence <= 1
    assert np.isfinite(est.info["cross_residual"])


def test_registration_does_not_import_torch():
    """Discovering the built-in frontends registers ``stream3r`` without torch (the network loads on creation)."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "from frontends.base import FRONTENDS\n"
            "assert 'stream3r' in FRONTENDS.names(), FRONTENDS.names()\n"
            "from frontends.stream3r.slam_frontend import Stream3rFrontendConfig\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr


def _image_folder(folder: Path, n: int = 4) -> Path:
    folder.mkdir(parents=True)
    for f in frames(n, (90, 120)):
        Image.fromarray(f.rgb).save(folder / f"frame{f.index:03d}.png")
    return folder


def test_slam_run_on_image_folder(tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    proc = slam("run", "--data", str(_image_folder(tmp_path / "images")), "--out", str(out), "--quiet",
                "frontend=stream3r", f"frontend.stream3r.checkpoint={tiny_model_dir}", "frontend.stream3r.width=112")
    assert proc.returncode == 0, proc.stderr
    traj = read_tum(out / "trajectory.tum")
    assert len(traj.timestamps) == 4 and np.isfinite(traj.poses).all()
    assert "name: stream3r" in (out / "run.yaml").read_text()
    assert json.loads((out / "metrics.json").read_text())["frames"] == 4


def test_slam_run_on_kitti_layout(tmp_path, tiny_model_dir):
    from tests.datasets.test_kitti import make_kitti

    seq = make_kitti(tmp_path / "kitti", n=5)
    out = tmp_path / "out"
    proc = slam("run", "--data", str(seq), "--out", str(out), "--quiet", "frontend=stream3r",
                f"frontend.stream3r.checkpoint={tiny_model_dir}", "frontend.stream3r.width=112",
                "frontend.stream3r.mode=causal")
    assert proc.returncode == 0, proc.stderr
    assert len(read_kitti(out / "trajectory.kitti").poses) == 5


@pytest.mark.slow
def test_slam_run_official_width(tmp_path, tiny_model_dir):
    """Default options (width 518, window mode) end to end."""
    out = tmp_path / "out"
    proc = slam("run", "--data", str(_image_folder(tmp_path / "images", 3)), "--out", str(out), "--quiet",
                "frontend=stream3r", f"frontend.stream3r.checkpoint={tiny_model_dir}")
    assert proc.returncode == 0, proc.stderr
    assert len(read_tum(out / "trajectory.tum").timestamps) == 3


def test_missing_checkpoint_is_a_config_error(tmp_path):
    proc = slam("run", "--data", str(_image_folder(tmp_path / "images", 2)), "--out", str(tmp_path / "o"),
                "frontend=stream3r")
    assert proc.returncode == 2 and "checkpoint" in proc.stderr and "Traceback" not in proc.stderr
    proc = slam("run", "--data", str(tmp_path / "images"), "--out", str(tmp_path / "o2"), "frontend=stream3r",
                f"frontend.stream3r.checkpoint={tmp_path / 'nope'}")
    assert proc.returncode == 2 and "nope" in proc.stderr and "Traceback" not in proc.stderr
