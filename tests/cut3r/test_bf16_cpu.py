"""The bf16 mixed-precision path of the CUT3R family on CPU (torch CPU autocast), against float32.

The network runs encoder and decoders under autocast and keeps the heads and the committed state in
float32. Tolerance, stated per output as ``|bf16 - fp32| / (1 + |fp32|)`` over six frames of the tiny
fixture models (both heads, every rule): 99th percentile <= 3e-2 and median <= 1e-2 (bf16 keeps 8 bits
of mantissa: ~4e-3 relative per rounding). The maximum is not bounded for the linear head's self-view
points: that head flips a point's sign to make z >= 0, so a point with z near 0 may land on the other
side.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from frontends import create
from frontends.cut3r.slam_frontend import Cut3rFrontendConfig
from tests.cut3r.compact_fixtures import DATA
from tests.cut3r.fixture_models import fixture_model, load_npz
from tests.cut3r.threads import single_torch_thread  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("single_torch_thread")

KEYS = ("pts3d_in_self_view", "conf_self", "pts3d_in_other_view", "conf", "camera_pose", "update_weight")
P99_TOL, MEDIAN_TOL = 3e-2, 1e-2


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    return torch.from_numpy(load_npz(DATA / "inputs_land_64x48.npz")["img"])


@pytest.mark.parametrize("head", ["dpt", "linear"])
@pytest.mark.parametrize("rule", ["cut3r", "ttt3r", "ttsa3r"])
def test_bf16_on_cpu_matches_float32(head, rule, frames):
    net = fixture_model(DATA, head)
    fp32, bf16 = net.session(update=rule), net.session(update=rule, autocast_dtype=torch.bfloat16)
    rel = {k: [] for k in KEYS}
    for i in range(frames.shape[0]):
        ref, ours = fp32.step(frames[i:i + 1]), bf16.step(frames[i:i + 1])
        for k in KEYS:
            assert ours[k].dtype == torch.float32, k
            rel[k].append(((ours[k] - ref[k]).abs() / (1 + ref[k].abs())).flatten())
    for k in KEYS:
        r = torch.cat(rel[k]).numpy()
        assert np.quantile(r, 0.99) <= P99_TOL, f"{head}/{rule} {k}: p99 {np.quantile(r, 0.99):.2e}"
        assert np.median(r) <= MEDIAN_TOL, f"{head}/{rule} {k}: median {np.median(r):.2e}"
    assert bf16.state.dtype == torch.float32


def test_bf16_actually_changes_the_encoder_and_decoder(frames):
    """Guard against a silently ignored autocast: bf16 must not be bit-identical to float32."""
    net = fixture_model(DATA, "dpt")
    ref = net.session().step(frames[:1])["pts3d_in_self_view"]
    ours = net.session(autocast_dtype=torch.bfloat16).step(frames[:1])["pts3d_in_self_view"]
    assert not torch.equal(ref, ours)


def test_heads_run_in_float32_under_bf16(frames):
    net = fixture_model(DATA, "dpt")
    seen = []

    def record(module, args):
        tokens = args[0]
        seen.append(([t.dtype for t in tokens], torch.is_autocast_enabled("cpu"),
                     {p.dtype for p in module.parameters()}))

    handle = net.downstream_head.register_forward_pre_hook(record)
    try:
        net.session(autocast_dtype=torch.bfloat16).step(frames[:1])
    finally:
        handle.remove()
    (input_dtypes, autocast_on, param_dtypes), = seen
    assert set(input_dtypes) == {torch.float32}
    assert not autocast_on
    assert param_dtypes == {torch.float32}


def test_frontend_accepts_bf16_on_cpu(tmp_path):
    from tests.cut3r.fixture_models import read_compressed_safetensors
    from frontends.cut3r.checkpoint import write_safetensors

    model_string, state_dict = read_compressed_safetensors(DATA / "model_linear.safetensors.xz")
    path = tmp_path / "model.safetensors"
    write_safetensors(path, state_dict, model_string)
    frontend = create("ttsa3r", Cut3rFrontendConfig(checkpoint=str(path), autocast="bf16", size=64))
    from slam.types import Frame

    rgb = (load_npz(DATA / "inputs_land_64x48.npz")["img_uint8"][0]).copy()
    out = frontend.step(Frame(index=0, timestamp=0.0, rgb=rgb))
    assert out.points.dtype == np.float32 and np.isfinite(out.points).all()
    assert out.pose.shape == (4, 4)
