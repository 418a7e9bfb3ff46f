"""The Gaussian-map plugin: config, windows, view preprocessing, builder plumbing, the sink in a SLAM run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest
import torch

from mapping import build_sinks
from mapping.config import GaussiansConfig, MappingConfig, VizConfig
from mapping.gaussians import builder as builder_mod
from mapping.gaussians.builder import DeviceMemoryError, GaussianMapBuilder, View
from mapping.gaussians.ply import read_gaussian_ply
from mapping.gaussians.views import fit_view, plan_windows
from mapping.tttlrm import load_model, normalize_poses, to_world
from slam.errors import ConfigError
from slam.geometry import intrinsics_matrix
from tests.conftest import REPO

MODEL = Path(__file__).parent / "data" / "model_full.pt"


def _cfg(**kw) -> GaussiansConfig:
    base = dict(enabled=True, checkpoint=str(MODEL), device="cpu", ns_dtype="fp32")
    base.update(kw)
    return GaussiansConfig(**base)


def test_imports_stay_torch_free():
    code = ("import sys, mapping, mapping.config, mapping.gaussians, mapping.gaussians.arch, slam.pipeline, "
            "slam.cli; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_config_validation():
    GaussiansConfig().validate()  # off by default, no checkpoint needed
    assert GaussiansConfig().enabled is False and MappingConfig().gaussians.enabled is False
    for bad, key in ((dict(checkpoint=None), "checkpoint"), (dict(mode="x"), "mode"),
                     (dict(image_size=[20, 40]), "image_size"), (dict(keep_ratio=0.0), "keep_ratio"),
                     (dict(device="tpu"), "device")):
        with pytest.raises(ValueError, match=f"mapping.gaussians.{key}"):
            _cfg(**bad).validate()


def test_missing_checkpoint_is_one_clear_error(tmp_path):
    from tests.make_data import write_tum_sequence

    cfg = MappingConfig(gaussians=_cfg(checkpoint=str(tmp_path / "dl3dv_full.pt")))
    with pytest.raises(ConfigError, match="mapping.gaussians.checkpoint: file not found"):
        build_sinks(cfg, VizConfig(), tmp_path)
    seq = write_tum_sequence(tmp_path / "seq", n=2)
    proc = subprocess.run([sys.executable, "-m", "slam.cli", "run", "--data", str(seq), "--out",
                           str(tmp_path / "out"), "mapping.gaussians.enabled=true",
                           f"mapping.gaussians.checkpoint={tmp_path / 'nope.pt'}"],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "nope.pt" in lines[0], proc.stderr


def test_plan_windows():
    plans = plan_windows(10, 4)
    assert [p.owned for p in plans] == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9)]
    assert plans[-1].views == (8, 9)
    ar = plan_windows(10, 6, multiple=4)  # 6 rounds down to 4; the last window borrows context
    assert [p.owned for p in ar] == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9)]
    assert ar[-1].views == (6, 7, 8, 9)
    assert plan_windows(3, 16, multiple=4)[0].views == (0, 1, 2, 2)  # too few keyframes: repeat the last
    owned = [i for p in plan_windows(37, 8, multiple=4) for i in p.owned]
    assert owned == list(range(37))


@pytest.mark.parametrize("fit", ["crop", "stretch"])
def test_fit_view_keeps_projections(fit):
    K = intrinsics_matrix(50.0, 55.0, 30.2, 25.7)
    rgb = np.zeros((48, 64, 3), np.uint8)
    image, f = fit_view(rgb, K, (24, 40), fit)
    assert image.shape == (3, 24, 40) and image.dtype == np.float32
    pts = np.array([[0.1, -0.2, 1.0], [-0.3, 0.25, 2.0]])
    u = K[0, 0] * pts[:, 0] / pts[:, 2] + K[0, 2]  # OpenCV pixel-centre coordinates in the 64x48 image
    v = K[1, 1] * pts[:, 1] / pts[:, 2] + K[1, 2]
    if fit == "crop":  # 64 x 48 -> 64 x 38 rows (aspect 24:40), top = 5, then scale 40/64 in both axes
        exp_u, exp_v = (u + 0.5) * 40 / 64, (v + 0.5 - 5) * 24 / 38
    else:
        exp_u, exp_v = (u + 0.5) * 40 / 64, (v + 0.5) * 24 / 48
    np.testing.assert_allclose(f[0] * pts[:, 0] / pts[:, 2] + f[2], exp_u, rtol=1e-6)
    np.testing.assert_allclose(f[1] * pts[:, 1] / pts[:, 2] + f[3], exp_v, rtol=1e-6)


def _views(n=5, seed=0):
    rng = np.random.default_rng(seed)
    views = []
    for i in range(n):
        pose = np.eye(4)
        pose[:3, 3] = [0.1 * i, 0.02 * i * i, 0.05 * i]
        views.append(View(kf_id=10 + i, rgb=rng.integers(0, 255, (24, 40, 3), dtype=np.uint8),
                          K=intrinsics_matrix(30.0, 30.0, 19.5, 11.5), pose=pose))
    return views


def test_builder_equals_predict_and_to_world():
    """No pruning, one window: the builder's map is exactly predict + to_world of the window."""
    views = _views(5)
    b = GaussianMapBuilder(_cfg(window=8, min_opacity=0.0, keep_ratio=1.0, crop_to_map=False))
    g = b.build(views)
    net = load_model(MODEL, ns_dtype="fp32")
    images = torch.from_numpy(np.stack([v.rgb for v in views]).transpose(0, 3, 1, 2).astype(np.float32) / 255)[None]
    k = torch.tensor([[30.0, 30.0, 20.0, 12.0]]).repeat(5, 1)[None]
    c2w_n, anchor, scale = normalize_poses(np.stack([v.pose for v in views]), "full")
    ref = to_world(net.predict(images, torch.from_numpy(c2w_n)[None], k, mode="full"), anchor, scale)
    order = np.argsort(-ref["opacity_logits"][0, :, 0].numpy(), kind="stable")
    for key in ("means", "log_scales", "quats", "sh"):
        np.testing.assert_allclose(g[key], ref[key][0].numpy()[order], rtol=1e-5, atol=1e-5)
    assert g["means"].shape == (5 * 24 * 40, 3)


def test_builder_ar_windows_pruning_and_cache(monkeypatch):
    views = _views(6)
    b = GaussianMapBuilder(_cfg(mode="ar", window=4, min_opacity=0.05, keep_ratio=0.5, crop_to_map=False))
    g = b.build(views)
    assert len(g["means"]) <= 6 * 960 // 2 and (1 / (1 + np.exp(-g["opacity_logits"])) > 0.05).all()
    again = b.build(views)
    np.testing.assert_array_equal(again["means"], g["means"])  # deterministic
    calls = []
    monkeypatch.setattr(b, "_run_window", lambda *a: calls.append(a) or None)
    b.build(views)
    assert calls == []  # unchanged windows come from the cache
    lo, hi = np.array([-1.0, -1.0, 0.0]), np.array([1.0, 1.0, 1.5])
    inside = GaussianMapBuilder(_cfg(mode="ar", window=4, min_opacity=0.05, keep_ratio=0.5)).build(views, (lo, hi))
    assert 0 < len(inside["means"]) <= len(g["means"])
    assert ((inside["means"] >= lo) & (inside["means"] <= hi)).all()


def test_memory_error_says_how_much(monkeypatch):
    b = GaussianMapBuilder(_cfg(window=4))
    monkeypatch.setattr(builder_mod, "_available_bytes", lambda device: 1000)
    with pytest.raises(DeviceMemoryError, match=r"cannot hold a window of 4 views at 24x40: needs about .* GiB"):
        b.build(_views(4))


class _FakeStream:
    def __init__(self):
        self.logged = []

    def log(self, path, obj):
        self.logged.append((path, obj))


def test_slam_run_writes_gaussians_inside_the_map(tmp_path, monkeypatch):
    """``slam run`` with the fixture model (random weights: meaningless content, real plumbing)."""
    from slam.config import load_run_config
    from slam.pipeline import Pipeline
    from tests.make_data import write_tum_sequence

    seq = write_tum_sequence(tmp_path / "seq", n=10, size=(48, 64))
    cfg = load_run_config(None, data=seq, out=tmp_path / "out", overrides=[
        "backend.sync=true", "backend.keyframe.translation=0.01", "mapping.gaussians.enabled=true",
        f"mapping.gaussians.checkpoint={MODEL}", "mapping.gaussians.window=4", "mapping.gaussians.device=cpu"])
    pipe = Pipeline(cfg, progress=False)
    stream = _FakeStream()
    original = build_sinks

    def with_fake_rerun(*args):
        sinks = original(*args)
        for s in sinks:
            if type(s).__name__ == "GaussianSink":
                s.rerun = type("R", (), {"rec": type("Rec", (), {"stream": stream})()})()
        return sinks

    import slam.pipeline

    monkeypatch.setattr(slam.pipeline, "build_sinks", with_fake_rerun)
    pipe.run()
    g = read_gaussian_ply(tmp_path / "out" / "gaussians.ply")
    n_kf = sum(1 for line in (tmp_path / "out" / "keyframes.tum").read_text().splitlines()
               if line and not line.startswith("#"))
    assert 0 < len(g["means"]) <= n_kf * 24 * 40 * 0.4 + 1
    assert np.isfinite(g["means"]).all() and (1 / (1 + np.exp(-g["opacity_logits"])) > 0.001).all()
    points = np.asarray(o3d.io.read_point_cloud(str(tmp_path / "out" / "map.ply")).points)
    centres = np.loadtxt(tmp_path / "out" / "keyframes.tum")[:, 1:4]
    allp = np.concatenate([points, centres])
    lo, hi = allp.min(0), allp.max(0)
    pad = 0.1 * np.linalg.norm(hi - lo) + 1e-4
    assert ((g["means"] >= lo - pad) & (g["means"] <= hi + pad)).all()
    paths = [p for p, _ in stream.logged]
    assert paths == ["/world/gaussians"]


def test_sink_every_k_keyframes_and_image_sources(tmp_path, monkeypatch):
    """Rebuild every 2 keyframes; images from Keyframe.frame, from on_frame when dropped, else Keyframe.colors."""
    import dataclasses

    from mapping.gaussians.sink import GaussianSink
    from slam.sinks import FrameEvent
    from tests.mapping import synthetic as syn

    sink = GaussianSink(_cfg(every_k_keyframes=2, window=4, crop_to_map=False), tmp_path)
    seen = []
    original = sink.builder.build
    monkeypatch.setattr(sink.builder, "build", lambda views, bounds=None: seen.append(views) or original(views, bounds))
    poses = syn.trajectory(3)
    kfs = []
    for k in range(3):
        frame, out = syn.frame_and_output(k, poses[k])
        kf = syn.keyframe(k, frame, out, poses[k])
        if k == 1:  # backend dropped the frame: the sink's copy from on_frame is used
            kf = dataclasses.replace(kf, frame=None)
            sink.on_frame(FrameEvent(frame=frame, output=out, pose=poses[k], keyframe_id=k))
        if k == 2:  # no frame and no intrinsics: the keyframe's own colours
            kf = dataclasses.replace(kf, frame=None)
        kfs.append(kf)
        sink.on_keyframes(list(kfs), [])
    assert len(seen) == 1 and len(seen[0]) == 2  # rebuilt once, at 2 keyframes
    assert sink.path.is_file()
    sink.finish(np.zeros(3), poses, {})
    views = seen[-1]
    assert [v.rgb.shape for v in views] == [(480, 640, 3), (480, 640, 3), (60, 80, 3)]
    assert views[2].rgb is kfs[2].colors and np.allclose(views[2].K, kfs[2].K)
    assert len(read_gaussian_ply(sink.path)["means"]) == 3 * 24 * 40 * 0.4
