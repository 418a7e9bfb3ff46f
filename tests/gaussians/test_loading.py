"""Safe tttLRM checkpoint loading, the safetensors conversion and the full-size architecture."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml

from mapping.gaussians.arch import TttLrmArch, read_config
from mapping.gaussians.loading import (LOSS_PREFIXES, build_model, convert_to_safetensors, read_checkpoint,
                                       select_network_keys)
from mapping.tttlrm import load_model
from slam.errors import CheckpointError

DATA = Path(__file__).parent / "data"
RELEASED_PARAMS = 399_985_224
RELEASED_KEYS = 412


def _predict(net, seed=0):
    gen = torch.Generator().manual_seed(seed)
    img = torch.rand(1, 2, 3, 16, 24, generator=gen)
    c2w = torch.eye(4).repeat(1, 2, 1, 1)
    c2w[0, 1, 0, 3] = 0.5
    k = torch.tensor([[20.0, 20.0, 12.0, 8.0]]).repeat(2, 1)[None]
    return net.predict(img, c2w, k, mode="full")


def test_decoy_keys_ignored_by_name_and_other_keys_reported(tmp_path, caplog):
    state, _ = read_checkpoint(DATA / "model_full.pt")
    arch = read_config(DATA / "model_full.yaml")
    chosen, report = select_network_keys(state, build_model(arch))
    assert len(chosen) == 38 and all(k.startswith(LOSS_PREFIXES) for k in report.ignored)
    assert len(report.ignored) == 3 and report.unexpected == []
    state["module.stray.weight"] = torch.zeros(2)
    with caplog.at_level("WARNING"):
        _, report = select_network_keys(state, build_model(arch))
    assert report.unexpected == ["module.stray.weight"] and "module.stray.weight" in caplog.text


def test_missing_or_misshaped_network_key_raises(tmp_path):
    ck = torch.load(DATA / "model_full.pt", weights_only=True)
    missing = dict(ck["model"])
    del missing["decoder.1.weight"]
    torch.save({"model": missing}, tmp_path / "missing.pt")
    shutil.copy(DATA / "model_full.yaml", tmp_path / "missing.yaml")
    with pytest.raises(CheckpointError, match="decoder.1.weight"):
        load_model(tmp_path / "missing.pt")
    bad = dict(ck["model"])
    bad["tokenizer.1.weight"] = torch.zeros(3, 3)
    torch.save({"model": bad}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="tokenizer.1.weight has shape"):
        load_model(tmp_path / "bad.pt", config=DATA / "model_full.yaml")
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nope.pt")


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path(_Payload.target),))


def test_pickled_code_is_not_executed(tmp_path):
    _Payload.target = str(tmp_path / "pwned")
    torch.save({"model": {"x": _Payload()}}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="weights-only"):
        load_model(tmp_path / "evil.pt", config=DATA / "model_full.yaml")
    assert not (tmp_path / "pwned").exists()


def test_safetensors_conversion_round_trip(tmp_path):
    dst = convert_to_safetensors(DATA / "model_full.pt", tmp_path / "m.safetensors")
    from safetensors import safe_open

    with safe_open(str(dst), framework="pt") as f:
        assert not any(k.startswith(LOSS_PREFIXES) for k in f.keys())
    a = load_model(DATA / "model_full.pt", ns_dtype="fp32")
    b = load_model(dst, ns_dtype="fp32")  # architecture from the metadata, no YAML beside it
    assert b.arch == a.arch
    out_a, out_b = _predict(a), _predict(b)
    for key in out_a:
        assert torch.equal(out_a[key], out_b[key]), key


def test_config_dict_and_defaults():
    cfg = yaml.safe_load((DATA / "model_full.yaml").read_text())
    assert TttLrmArch.from_dict(cfg).max_dist == 4.0
    del cfg["model"]["max_dist"]
    arch = TttLrmArch.from_dict(cfg)
    assert arch.max_dist == 500.0 and arch.miniupdate_views == 4 and arch.max_scaling == -1.2
    del cfg["model"]["ttt_scan"]
    with pytest.raises(ValueError, match="model.ttt_scan"):
        TttLrmArch.from_dict(cfg)


def test_released_architecture_on_meta_device():
    for scan in ("full", "ar"):
        net = build_model(TttLrmArch.released(scan), "meta")
        state = net.state_dict()
        assert len(state) == RELEASED_KEYS
        assert sum(p.numel() for p in net.parameters()) == RELEASED_PARAMS
        assert tuple(state["decoder.1.weight"].shape) == (3776, 768)
        assert tuple(state["blocks.23.module_list.1.f.w1"].shape) == (1, 3072, 768)
        assert tuple(state["blocks.0.module_list.1.f.lr_fc.bias"].shape) == (3,)


@pytest.mark.slow
def test_released_architecture_loads_strictly_from_official_layout(tmp_path):
    """A full-size checkpoint in the official layout (bf16 storage to halve the file), plus a loss-network key."""
    net = build_model(TttLrmArch.released("ar"), "meta")
    state = {k: torch.zeros(v.shape, dtype=torch.bfloat16) for k, v in net.state_dict().items()}
    state["perceptual_loss_module.Net.conv1.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save({"model": state, "step": 1}, tmp_path / "dl3dv_ar.pt")
    del state, net
    model = load_model(tmp_path / "dl3dv_ar.pt", ns_dtype="bf16")  # no YAML: released architecture, AR from the name
    assert model.arch.ttt_scan == "ar" and model.arch.n_layer == 24
    assert sum(p.numel() for p in model.parameters()) == RELEASED_PARAMS
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in model.parameters())
    assert not any(p.requires_grad for p in model.parameters())
    assert torch.isfinite(model.decoder[1].weight).all()


def test_convert_tool(tmp_path):
    from tests.conftest import load_tool

    tool = load_tool("tttlrm_convert")
    assert tool.main([str(DATA / "model_full.pt"), "-o", str(tmp_path / "m.safetensors")]) == 0
    assert load_model(tmp_path / "m.safetensors").arch == read_config(DATA / "model_full.yaml")
    assert tool.main([str(tmp_path / "missing.pt"), "-o", str(tmp_path / "x.safetensors")]) == 2


@pytest.mark.parametrize("content", [b"", b"not a safetensors file at all", b"\xff" * 64])
def test_corrupt_safetensors_is_one_clear_error(tmp_path, content):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(bad)
    assert "broken.safetensors" in str(info.value) and "safetensors" in str(info.value)
    assert "\n" not in str(info.value)
