"""The cut3r / ttt3r / ttsa3r SLAM frontends on the tiny fixture models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from frontends.base import FRONTENDS, create
from frontends.cut3r.slam_frontend import Cut3rFrontendConfig, camera_pose_to_matrix
from slam.errors import CheckpointError, ConfigError
from slam.types import Frame, FrontendOutput, PairEstimate

REPO = Path(__file__).resolve().parents[2]
RULES = ("cut3r", "ttt3r", "ttsa3r")


def load_npz(path: Path) -> dict:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def land(fixtures_dir) -> np.ndarray:
    return load_npz(fixtures_dir / "inputs_land_64x48.npz")["img_uint8"]


def frames_of(images: np.ndarray, K: np.ndarray | None = None) -> list[Frame]:
    return [Frame(index=i, timestamp=0.1 * i, rgb=img, K=K, source=f"frame{i}") for i, img in enumerate(images)]


def make(fixtures_dir, name: str = "ttsa3r", head: str = "linear", **options):
    options.setdefault("size", 64)
    return create(name, Cut3rFrontendConfig(checkpoint=str(fixtures_dir / f"model_{head}.pth"), **options))


def test_registered_under_three_names_sharing_one_section():
    for name in RULES:
        spec = FRONTENDS.get(name)
        assert spec.section == "cut3r" and spec.config_cls is Cut3rFrontendConfig
        assert spec.factory.update_rule == name


def test_step_outputs_documented_shapes_and_types(fixtures_dir, land):
    fe = make(fixtures_dir, "ttsa3r")
    assert fe.name == "ttsa3r" and fe.session.update == "ttsa3r"
    outs = [fe.step(f) for f in frames_of(land[:2])]
    for i, out in enumerate(outs):
        assert isinstance(out, FrontendOutput) and out.metric is False and out.segment == 0
        assert out.pose.shape == (4, 4) and out.pose.dtype == np.float64
        assert np.allclose(out.pose[3], [0, 0, 0, 1])
        R = out.pose[:3, :3]
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-6) and np.linalg.det(R) == pytest.approx(1, abs=1e-6)
        assert out.points.shape == (48, 64, 3) and out.points.dtype == np.float32
        assert out.confidence.shape == (48, 64) and out.confidence.dtype == np.float32
        assert float(out.confidence.min()) >= 1.0
        assert out.colors.dtype == np.uint8 and np.array_equal(out.colors, land[i])
        assert out.K.shape == (3, 3) and tuple(out.K[:2, 2]) == (32, 24)
        assert out.K[0, 0] == out.K[1, 1] == pytest.approx(out.stats["focal"])
        assert out.descriptor.shape == (128,) and np.linalg.norm(out.descriptor) == pytest.approx(1, abs=1e-5)
        assert {"update_weight_mean", "ms", "focal"} <= set(out.stats) and out.stats["ms"] > 0
    assert outs[0].stats["update_weight_mean"] == 1.0  # first frame: full update
    assert outs[1].stats["update_weight_mean"] < 1.0  # ttsa3r gates later frames


@pytest.mark.parametrize(("name", "run", "inputs"), [
    ("cut3r", "linear_cut3r_land_64x48", "inputs_land_64x48"),
    ("ttt3r", "linear_ttt3r_land_64x48", "inputs_land_64x48"),
    ("ttsa3r", "linear_ttsa3r_port_48x64", "inputs_port_48x64"),
])
def test_poses_and_points_follow_the_official_run(fixtures_dir, name, run, inputs):
    """The registered name selects the official update rule; poses are the fixture's camera_pose as T_wc."""
    ref = load_npz(fixtures_dir / f"{run}.npz")
    images = load_npz(fixtures_dir / f"{inputs}.npz")["img_uint8"][:4]
    fe = make(fixtures_dir, name)
    for i, frame in enumerate(frames_of(images)):
        out = fe.step(frame)
        assert np.allclose(out.pose, camera_pose_to_matrix(ref["camera_pose"][i]), atol=5e-3, rtol=1e-3)
        assert np.allclose(out.points, ref["pts3d_in_self_view"][i], atol=5e-3, rtol=1e-3)
        assert out.stats["update_weight_mean"] == pytest.approx(float(ref["beta"][i].mean()), abs=5e-4)


def test_reset_starts_a_new_segment_from_scratch(fixtures_dir, land):
    fe = make(fixtures_dir, "ttt3r")
    frames = frames_of(land[:3])
    fe.step(frames[0])
    fe.step(frames[1])
    fe.reset()
    after = fe.step(frames[2])
    fresh = make(fixtures_dir, "ttt3r").step(frames[2])
    assert after.segment == 1 and fresh.segment == 0
    assert np.array_equal(after.pose, fresh.pose) and np.array_equal(after.points, fresh.points)


def test_periodic_reset_with_overlap_frame(fixtures_dir, land):
    fe = make(fixtures_dir, "ttt3r", reset_every=3)
    frames = frames_of(land[:5])
    outs = [fe.step(f) for f in frames]
    assert [o.segment for o in outs] == [0, 0, 0, 1, 1]
    assert "overlap_pose" in outs[2].stats and "overlap_pose" not in outs[1].stats
    # the new segment was primed with frame 2 (TTT3R's overlap view): frame 3 equals a fresh run on 2, 3
    fresh = make(fixtures_dir, "ttt3r")
    first = fresh.step(frames[2])
    assert np.array_equal(outs[2].stats["overlap_pose"], first.pose)
    assert np.array_equal(outs[3].pose, fresh.step(frames[3]).pose)


def test_pair_is_independent_of_the_stream(fixtures_dir, land):
    frames = frames_of(land[:5])
    plain = make(fixtures_dir, "ttsa3r")
    expected = [plain.step(f) for f in frames[:3]]
    fe = make(fixtures_dir, "ttsa3r")
    fe.step(frames[0])
    fe.step(frames[1])
    pair = fe.pair(frames[3], frames[4])
    third = fe.step(frames[2])
    assert np.array_equal(third.pose, expected[2].pose) and np.array_equal(third.points, expected[2].points)
    assert third.segment == 0

    assert isinstance(pair, PairEstimate) and pair.scale == 1.0 and not pair.sim3
    fresh = make(fixtures_dir, "ttsa3r")
    out_a, out_b = fresh.step(frames[3]), fresh.step(frames[4])
    T_ab = np.linalg.inv(out_a.pose) @ out_b.pose
    assert np.allclose(pair.T_ab, T_ab, atol=1e-9)
    assert np.array_equal(pair.points_a, out_a.points)
    moved = out_b.points.astype(np.float64) @ T_ab[:3, :3].T + T_ab[:3, 3]
    assert np.allclose(pair.points_b, moved, atol=1e-5)
    assert pair.conf_a.shape == pair.conf_b.shape == (48, 64)
    assert 0.0 <= pair.confidence <= 1.0 and np.isfinite(pair.info["cross_residual"])


def test_calibrated_mode_uses_the_frame_intrinsics(fixtures_dir, land):
    K = np.array([[40.0, 0, 31.5], [0, 41.0, 23.5], [0, 0, 1]])
    fe = make(fixtures_dir, "cut3r", calibrated=True, size=32)  # 64x48 -> 32x24, crop to 32x16
    out = fe.step(frames_of(land[:1], K)[0])
    assert out.points.shape == (16, 32, 3)
    assert np.allclose(out.K, [[20.0, 0, 15.5], [0, 20.5, 7.5], [0, 0, 1]])
    with pytest.raises(ConfigError, match="frame 0 .*no intrinsics"):
        fe.step(frames_of(land[:1])[0])


def test_options_descriptor_and_confidence_threshold(fixtures_dir, land):
    fe = make(fixtures_dir, "cut3r", descriptor=False, conf_threshold=1e9)
    out = fe.step(frames_of(land[:1])[0])
    assert out.descriptor is None and not out.confidence.any()


def test_default_size_follows_the_head(fixtures_dir):
    assert make(fixtures_dir, "cut3r", size=None).size == 224
    assert make(fixtures_dir, "cut3r", head="dpt", size=None).size == 512


@pytest.mark.parametrize(("options", "error", "needle"), [
    ({"checkpoint": None}, ConfigError, "checkpoint is required"),
    ({"autocast": "fp16"}, ConfigError, "needs device 'cuda'"),
    ({"autocast": "fp8"}, ConfigError, "autocast must be one of"),
    ({"device": "tpu"}, ConfigError, "device must be"),
    ({"size": 100}, ConfigError, "multiple of 16"),
    ({"reset_every": 0}, ConfigError, "reset_every"),
    ({"checkpoint": "/nonexistent/model.pth"}, CheckpointError, "not found"),
])
def test_config_errors(fixtures_dir, options, error, needle):
    config = dict(checkpoint=str(fixtures_dir / "model_linear.pth"))
    config.update(options)
    with pytest.raises(error, match=needle):
        create("ttt3r", Cut3rFrontendConfig(**config))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_requested_without_cuda(fixtures_dir):
    with pytest.raises(ConfigError, match="CUDA is not available"):
        make(fixtures_dir, device="cuda")


def test_camera_pose_convention():
    rng = np.random.default_rng(0)
    for _ in range(5):
        q_xyzw = Rotation.random(random_state=rng).as_quat()
        t = rng.normal(size=3)
        encoded = np.concatenate([t, [q_xyzw[3]], q_xyzw[:3]])  # [t, qw, qx, qy, qz]
        T = camera_pose_to_matrix(encoded)
        assert np.allclose(T[:3, :3], Rotation.from_quat(q_xyzw).as_matrix(), atol=1e-12)
        assert np.allclose(T[:3, 3], t) and np.allclose(T[3], [0, 0, 0, 1])
        # a non-unit quaternion gives the same rotation (s = 2/|q|^2)
        scaled = np.concatenate([t, 3.0 * encoded[3:]])
        assert np.allclose(camera_pose_to_matrix(scaled), T, atol=1e-12)
        # camera-to-world: the camera centre (origin of the camera frame) is at t in the world
        assert np.allclose((T @ [0, 0, 0, 1])[:3], t)
    # 90 degrees about z maps the camera x axis to world y
    c = np.sqrt(0.5)
    T = camera_pose_to_matrix([0, 0, 0, c, 0, 0, c])
    assert np.allclose(T[:3, :3] @ [1, 0, 0], [0, 1, 0], atol=1e-12)


def test_importing_the_frontend_module_stays_light():
    # registering the frontends (importing this module, as `slam frontends` does) loads no network code,
    # no torch and no heavy library; frontends.rgbd is stubbed so that only this module's imports count
    code = ("import sys, types; sys.modules['frontends.rgbd'] = types.ModuleType('frontends.rgbd'); "
            "import frontends.cut3r.slam_frontend; "
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('scipy', 'open3d', 'gtsam', 'PIL', 'safetensors', "
            "'rerun', 'kornia', 'pypose', 'cv2', 'torch') or m.startswith('frontends.cut3r.model')]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
