"""The released architecture with random weights, saved in the official layout (``config.json`` with the four
constructor arguments + ``model.safetensors``, 1403 float32 tensors, ~4.8 GB), loads strictly and runs one
518x392 frame on CPU. Needs ~12 GB of memory and several minutes: slow."""

from __future__ import annotations

import json

import pytest
import torch

pytestmark = pytest.mark.slow


def test_full_size_random_model_in_official_layout(tmp_path):
    from frontends.stream3r import load_model
    from frontends.stream3r.checkpoint import build_model
    from frontends.stream3r.config import Stream3rNetConfig
    from safetensors.torch import save_file

    net = build_model(Stream3rNetConfig(), None)
    gen = torch.Generator().manual_seed(0)
    state = {}
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.normal_(0.0, 0.02, generator=gen) if not name.endswith(("norm.weight", "norm1.weight", "norm2.weight")) \
                else p.fill_(1.0)
            state[name] = p
    folder = tmp_path / "STream3R"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"img_size": 518, "patch_size": 14, "embed_dim": 1024,
                                                    "freeze": "none"}))
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    probe = {k: state[k].clone() for k in ("aggregator.camera_token", "depth_head.scratch.output_conv2.2.bias")}
    del net, state

    loaded = load_model(folder)
    assert len(loaded.state_dict()) == 1403
    for key, value in probe.items():
        assert torch.equal(loaded.state_dict()[key], value)
    out = loaded.session(mode="causal").step(torch.rand(1, 3, 392, 518, generator=torch.Generator().manual_seed(1)))
    assert out["pose_enc"].shape == (1, 1, 9)
    assert out["world_points"].shape == (1, 1, 392, 518, 3) and out["depth"].shape == (1, 1, 392, 518, 1)
    assert all(torch.isfinite(out[k]).all() for k in ("pose_enc", "world_points", "depth", "depth_conf"))
