"""Parity with the official STream3R code: every run of ``shared/fixtures/stream3r`` and the compact public
copy in ``tests/stream3r/data`` (runs without ``shared/``). Tolerance: fixtures README (per element
``1e-4 + 1e-4|ref|``, median ``1e-5``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.stream3r.conftest import STREAM3R_FIXTURES
from tests.stream3r.fixture_model import PUBLIC_ARRAYS
from tests.stream3r.helpers import OUTPUTS, check_close, run_batch, run_stream

_MANIFEST = STREAM3R_FIXTURES / "manifest.json"
RUNS = json.loads(_MANIFEST.read_text())["runs"] if _MANIFEST.is_file() else []
LENGTH_KEYS = ("agg_kv_len_attended", "agg_kv_len_kept", "cam_kv_len_attended", "cam_kv_len_kept")


@pytest.fixture(scope="module")
def shared_net(stream3r_fixtures):
    from frontends.stream3r import load_model

    return load_model(stream3r_fixtures / "model")


@pytest.mark.parametrize("run", RUNS, ids=[r["file"] for r in RUNS])
def test_fixture_run(run, shared_net, stream3r_fixtures):
    images = np.load(stream3r_fixtures / run["inputs"])["images"]
    ref = np.load(stream3r_fixtures / run["file"])
    window = run["window"] or 5
    if run["entry"] == "batch":
        ours = run_batch(shared_net, images, run["mode"], window)
    else:
        ours = run_stream(shared_net, images, run["mode"], window, internals=True)
        for key in LENGTH_KEYS:
            np.testing.assert_array_equal(ours[key], ref[key], err_msg=key)
    compared = [k for k in ref.files if k in ours and k not in LENGTH_KEYS]
    assert set(OUTPUTS) <= set(compared)
    for key in compared:
        check_close(ours[key], ref[key], f"{run['file']}:{key}")


def test_fixture_cameras(shared_net, stream3r_fixtures):
    """Extrinsic (camera-from-world), intrinsics from the fields of view and the depth unprojection."""
    from frontends.stream3r.cameras import extrinsic_from_pose_enc, intrinsics_from_pose_enc
    from slam.pointmaps import backproject_depth

    for name in ("stream_causal_land_84x42.npz", "stream_causal_port_42x70.npz"):
        ref = np.load(stream3r_fixtures / name)
        size = ref["depth"].shape[1:3]
        for t in range(len(ref["pose_enc"])):
            T_cw = extrinsic_from_pose_enc(ref["pose_enc"][t])
            K = intrinsics_from_pose_enc(ref["pose_enc"][t], size)
            check_close(T_cw[:3], ref["extrinsic"][t], f"{name}:extrinsic[{t}]")
            check_close(K, ref["intrinsic"][t], f"{name}:intrinsic[{t}]")
            cam = backproject_depth(ref["depth"][t, ..., 0], K).astype(np.float64)
            world = (cam - T_cw[:3, 3]) @ T_cw[:3, :3]  # R^T (X - t)
            check_close(world, ref["world_points_from_depth"][t], f"{name}:world_points_from_depth[{t}]")


def test_regenerated_weights_equal_public_file(tiny_model_dir, stream3r_fixtures):
    """The compact copy's model (rebuilt from the recipe) is bit-identical to the public fixture model."""
    from safetensors.torch import load_file

    ours = load_file(str(tiny_model_dir / "model.safetensors"))
    ref = load_file(str(stream3r_fixtures / "model" / "model.safetensors"))
    assert set(ours) == set(ref)
    assert all(torch.equal(ours[k], ref[k]) for k in ref)


def test_public_copy_parity(tiny_net):
    """Compact copy (no ``shared/`` needed): every output of the streaming window run, ``pose_enc`` of the others."""
    data = np.load(PUBLIC_ARRAYS)
    images = torch.from_numpy(data["images_uint8"]).permute(0, 3, 1, 2).float().div(255).numpy()
    stream_window = run_stream(tiny_net, images, "window", 5, internals=True)
    for key in OUTPUTS:
        check_close(stream_window[key], data[f"stream_window/{key}"], f"stream_window:{key}")
    for key in LENGTH_KEYS:
        np.testing.assert_array_equal(stream_window[key], data[f"stream_window/{key}"])
    runs = {"stream_causal": lambda: run_stream(tiny_net, images, "causal"),
            "stream_window3": lambda: run_stream(tiny_net, images, "window", 3),
            "batch_causal": lambda: run_batch(tiny_net, images, "causal"),
            "batch_window": lambda: run_batch(tiny_net, images, "window"),
            "batch_window3": lambda: run_batch(tiny_net, images, "window", 3),
            "batch_full": lambda: run_batch(tiny_net, images, "full")}
    for tag, fn in runs.items():
        check_close(fn()["pose_enc"], data[f"{tag}/pose_enc"], f"{tag}:pose_enc")
