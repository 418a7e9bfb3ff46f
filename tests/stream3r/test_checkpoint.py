"""Strict loading of the official layout: every missing/unexpected key is named, safetensors only,
``net.``/``module.`` prefixes, config overrides, and the full-size architecture's key set."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from frontends.stream3r import load_model
from frontends.stream3r.config import Stream3rNetConfig
from slam.errors import CheckpointError


def _copy(tiny_model_dir, tmp_path, state=None, config=None):
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(tiny_model_dir / "config.json", folder / "config.json")
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    if state is None:
        shutil.copy(tiny_model_dir / "model.safetensors", folder / "model.safetensors")
    else:
        save_file(state, str(folder / "model.safetensors"))
    return folder


def test_missing_and_unexpected_keys_are_named(tiny_model_dir, tmp_path):
    state = load_file(str(tiny_model_dir / "model.safetensors"))
    del state["camera_head.empty_pose_tokens"]
    state["aggregator.extra_token"] = torch.zeros(3)
    with pytest.raises(CheckpointError) as err:
        load_model(_copy(tiny_model_dir, tmp_path, state))
    assert "camera_head.empty_pose_tokens" in str(err.value) and "aggregator.extra_token" in str(err.value)


def test_wrong_shape_is_named(tiny_model_dir, tmp_path):
    state = load_file(str(tiny_model_dir / "model.safetensors"))
    state["point_head.norm.weight"] = torch.ones(7)
    with pytest.raises(CheckpointError, match="point_head.norm.weight"):
        load_model(_copy(tiny_model_dir, tmp_path, state))


def test_net_prefix_is_stripped_and_file_path_accepted(tiny_model_dir, tmp_path, tiny_net):
    state = {f"net.{k}": v for k, v in load_file(str(tiny_model_dir / "model.safetensors")).items()}
    folder = _copy(tiny_model_dir, tmp_path, state)
    net = load_model(folder / "model.safetensors")
    ref = tiny_net.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in net.state_dict().items())


def test_no_pickle_and_clear_errors(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(CheckpointError, match="pickle"):
        load_model(tmp_path)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="safetensors"):
        load_model(bad)


def test_config_without_overrides_is_the_release_architecture():
    """The official constructor arguments alone give the released sizes (1403 tensors, 1,190,596,120 params)."""
    from frontends.stream3r.model.net import Stream3rNet

    cfg = Stream3rNetConfig.from_dict({"img_size": 518, "patch_size": 14, "embed_dim": 1024, "freeze": "none"})
    with torch.device("meta"):
        net = Stream3rNet(cfg)
    state = net.state_dict()
    assert len(state) == 1403
    assert sum(t.numel() for t in state.values()) == 1_190_596_120
    assert tuple(state["aggregator.patch_embed.pos_embed"].shape) == (1, 1370, 1024)
    assert tuple(state["camera_head.poseLN_modulation.1.weight"].shape) == (3 * 2048, 2048)
    assert "depth_head.scratch.refinenet4.resConfUnit1.conv1.weight" not in state
    assert "depth_head.scratch.layer1_rn.bias" not in state


def test_invalid_config_is_a_checkpoint_error(tiny_model_dir, tmp_path):
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config["dpt_intermediate_layer_idx"] = [1, 3, 4, 99]
    with pytest.raises(CheckpointError, match="dpt_intermediate_layer_idx"):
        load_model(_copy(tiny_model_dir, tmp_path, config=config))
