"""Checkpoint reading (official .pth with Namespace or OmegaConf args, safetensors), strict loading, errors."""

from __future__ import annotations

import argparse
import gc
import lzma
import os
import shutil
import sys
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from frontends.cut3r.checkpoint import (
    check_state_dict,
    load_model,
    read_checkpoint,
    read_pth,
    sidecar_path,
    strip_module_prefix,
)
from frontends.cut3r.config import CUT3R_224_LINEAR, CUT3R_512_DPT
from frontends.cut3r.model_string import format_model_string
from slam.errors import CheckpointError
from tests.conftest import load_tool
from tests.cut3r.official_layout import save_official


def reference_checkpoint(path: Path) -> dict:
    """The fixture as torch itself reads it (Namespace args allow-listed), for comparison."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(path, map_location="cpu", weights_only=True)


def run_frames(net, imgs: np.ndarray, update: str = "cut3r") -> list[dict]:
    session = net.session(update=update)
    return [session.step(torch.from_numpy(imgs[i:i + 1])) for i in range(len(imgs))]


def assert_same_outputs(a: list[dict], b: list[dict]) -> None:
    for out_a, out_b in zip(a, b):
        for key in ("pts3d_in_self_view", "conf_self", "camera_pose", "pts3d_in_other_view", "update_weight"):
            assert torch.equal(out_a[key], out_b[key]), key


def decompress(fixtures_dir: Path, name: str, dest: Path, sidecar: bool = True) -> Path:
    out = dest / f"{name}.safetensors"
    out.write_bytes(lzma.decompress((fixtures_dir / f"{name}.safetensors.xz").read_bytes()))
    if sidecar:
        shutil.copy(fixtures_dir / f"{name}.config.txt", dest / f"{name}.config.txt")
    return out


@pytest.fixture(scope="module")
def inputs(fixtures_dir) -> np.ndarray:
    with np.load(fixtures_dir / "inputs_land_64x48.npz") as data:
        return data["img"][:2]


@pytest.fixture(scope="module")
def pth_outputs(fixtures_dir, inputs):
    """Outputs of the fixture .pth models on two frames, per head (computed once)."""
    cache = {}

    def get(head: str) -> list[dict]:
        if head not in cache:
            cache[head] = run_frames(load_model(fixtures_dir / f"model_{head}.pth"), inputs)
        return cache[head]

    return get


# --------------------------------------------------------------------------- official .pth files
@pytest.mark.parametrize("name", ["model_dpt", "model_dpt_hydra_args", "model_linear"])
def test_fixture_pth_loads_strictly_with_identical_weights(fixtures_dir, name):
    path = fixtures_dir / f"{name}.pth"
    ckpt = read_checkpoint(path)
    assert ckpt.format == "pth" and ckpt.metadata.get("epoch") is not None
    assert ckpt.config.head_type == ("linear" if "linear" in name else "dpt")
    net = load_model(path)
    assert not net.training
    reference = reference_checkpoint(fixtures_dir / f"{name.replace('_hydra_args', '')}.pth")["model"]
    loaded = net.state_dict()
    assert set(loaded) == set(reference)
    for key, value in reference.items():
        assert torch.equal(loaded[key], value), key


def test_hydra_args_give_the_same_model_string(fixtures_dir):
    plain = read_pth(fixtures_dir / "model_dpt.pth")
    hydra = read_pth(fixtures_dir / "model_dpt_hydra_args.pth")
    assert hydra.model_string == plain.model_string and hydra.config == plain.config
    assert "omegaconf" not in sys.modules  # read without importing omegaconf


def test_loader_executes_no_pickled_code_for_safe_files(fixtures_dir, monkeypatch):
    """Even if torch.load were asked to run arbitrary pickles, our loader passes weights_only=True."""
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    read_pth(fixtures_dir / "model_dpt_hydra_args.pth")
    assert calls == [True]


# --------------------------------------------------------------------------- safetensors + conversion
@pytest.mark.parametrize("head", ["dpt", "linear"])
def test_fixture_safetensors_gives_identical_outputs(fixtures_dir, tmp_path, inputs, pth_outputs, head):
    st = decompress(fixtures_dir, f"model_{head}", tmp_path)
    assert read_checkpoint(st).format == "safetensors"
    assert_same_outputs(run_frames(load_model(st), inputs), pth_outputs(head))


def test_safetensors_config_from_metadata_or_sidecar(fixtures_dir, tmp_path):
    # the fixture's metadata holds the config: no sidecar needed
    st = decompress(fixtures_dir, "model_linear", tmp_path, sidecar=False)
    assert read_checkpoint(st).config.head_type == "linear"
    # a plain state dict without metadata needs the sidecar
    sd = read_checkpoint(st).state_dict
    from safetensors.torch import save_file

    bare = tmp_path / "bare.safetensors"
    save_file(sd, str(bare))
    with pytest.raises(CheckpointError, match="bare.config.txt"):
        read_checkpoint(bare)
    sidecar_path(bare).write_text((fixtures_dir / "model_linear.config.txt").read_text())
    assert read_checkpoint(bare).config == read_checkpoint(st).config
    # metadata and sidecar that disagree are refused
    sidecar_path(st).write_text((fixtures_dir / "model_dpt.config.txt").read_text())
    with pytest.raises(CheckpointError, match="different architecture"):
        read_checkpoint(st)


def test_convert_tool_round_trip(fixtures_dir, tmp_path, capsys):
    convert_checkpoint = load_tool("convert_checkpoint")
    out = tmp_path / "conv" / "dpt.safetensors"
    assert convert_checkpoint.main([str(fixtures_dir / "model_dpt_hydra_args.pth"), "-o", str(out), "--verify"]) == 0
    assert out.is_file() and (tmp_path / "conv" / "dpt.config.txt").is_file()
    converted = read_checkpoint(out)
    original = read_checkpoint(fixtures_dir / "model_dpt.pth")
    assert converted.config == original.config and converted.metadata["source"] == "model_dpt_hydra_args.pth"
    assert set(converted.state_dict) == set(original.state_dict)  # aliased DPT keys are kept under both names
    assert torch.equal(converted.state_dict["downstream_head.dpt_self.scratch.layer1_rn.weight"],
                       converted.state_dict["downstream_head.dpt_self.scratch.layer_rn.0.weight"])
    for key, value in original.state_dict.items():
        assert torch.equal(converted.state_dict[key], value), key
    # refuses to overwrite, reports user errors with exit code 2 and one line
    assert convert_checkpoint.main([str(fixtures_dir / "model_dpt.pth"), "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert convert_checkpoint.main([str(tmp_path / "missing.pth")]) == 2
    err = capsys.readouterr().err
    assert "missing.pth" in err and "not found" in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- safety
class _ShellOnUnpickle:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(2)}, "args": _ShellOnUnpickle(f"touch {marker}")}, path)
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message and "system" in message and "refusing" in message
    assert not marker.exists()


def test_omegaconf_named_globals_never_resolve_to_real_code(tmp_path):
    """A global under omegaconf.* becomes an inert stub even if a module of that name is importable."""
    marker = tmp_path / "pwned"

    class Boom:
        def __init__(self, command):
            os.system(command)

        def __reduce__(self):
            return (type(self), (f"touch {marker}",))

    Boom.__module__, Boom.__qualname__ = "omegaconf.evil", "Boom"
    module = types.ModuleType("omegaconf.evil")
    module.Boom = Boom
    added = [name for name in ("omegaconf", "omegaconf.evil") if name not in sys.modules]
    sys.modules.setdefault("omegaconf", types.ModuleType("omegaconf"))
    sys.modules["omegaconf.evil"] = module
    try:
        instance = object.__new__(Boom)
        path = tmp_path / "stubbed.pth"
        torch.save({"model": {}, "args": instance}, path)
        with pytest.raises(CheckpointError, match="expected a config"):
            read_pth(path)
    finally:
        for name in added:
            del sys.modules[name]
    assert not marker.exists()


# --------------------------------------------------------------------------- mismatches and bad files
def _tiny_state_dict(fixtures_dir) -> tuple[dict, str]:
    ckpt = read_checkpoint(fixtures_dir / "model_linear.pth")
    return dict(ckpt.state_dict), ckpt.model_string


def test_unknown_missing_and_wrong_shapes_are_named(fixtures_dir, tmp_path):
    sd, model_string = _tiny_state_dict(fixtures_dir)
    sd["extra.weight"] = torch.zeros(3)
    del sd["dec_norm.bias"]
    sd["pose_token"] = torch.zeros(1, 1, 65)
    path = save_official(tmp_path / "bad.pth", sd, model_string)
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    message = str(info.value)
    assert "bad.pth" in message
    assert "1 unknown key(s): extra.weight" in message
    assert "1 missing key(s): dec_norm.bias" in message
    assert "1 wrong shape(s): pose_token (file [1, 1, 65], model [1, 1, 64])" in message


def test_many_missing_keys_are_counted_and_truncated(fixtures_dir):
    sd, _ = _tiny_state_dict(fixtures_dir)
    expected = dict(sd)
    partial = {k: v for k, v in sd.items() if not k.startswith("enc_blocks.")}
    n_missing = len(sd) - len(partial)
    with pytest.raises(CheckpointError, match=rf"{n_missing} missing key\(s\): enc_blocks\.0\..*, \.\.\."):
        check_state_dict(expected, partial, "x.pth")


def test_module_prefix_stripped_only_when_all_keys_have_it(fixtures_dir, tmp_path):
    sd, model_string = _tiny_state_dict(fixtures_dir)
    prefixed = {f"module.{k}": v for k, v in sd.items()}
    net = load_model(save_official(tmp_path / "ddp.pth", prefixed, model_string))
    assert torch.equal(net.state_dict()["pose_token"], sd["pose_token"])
    mixed = dict(prefixed, pose_token=sd["pose_token"])
    assert strip_module_prefix(mixed) == mixed
    with pytest.raises(CheckpointError, match="unknown key"):
        load_model(save_official(tmp_path / "mixed.pth", mixed, model_string))


def test_interpolated_model_entry_is_resolved(fixtures_dir, tmp_path):
    sd, model_string = _tiny_state_dict(fixtures_dir)
    path = save_official(tmp_path / "interp.pth", sd, model_string, args_kind="hydra", model_value="${arch}")
    assert read_pth(path).model_string == model_string


def test_missing_and_corrupt_files(fixtures_dir, tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nope.pth")
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(CheckpointError, match="not a PyTorch zip checkpoint"):
        load_model(tmp_path / "text.pth")
    data = (fixtures_dir / "model_linear.pth").read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pth"):
        load_model(tmp_path / "truncated.pth")
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(CheckpointError, match="bad.safetensors.*corrupt"):
        load_model(tmp_path / "bad.safetensors")
    torch.save({"weights": {}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="'model' entry"):
        load_model(tmp_path / "other.pth")
    torch.save({"model": {"a": torch.zeros(1)}}, tmp_path / "noargs.pth")
    with pytest.raises(CheckpointError, match="no 'args'"):
        load_model(tmp_path / "noargs.pth")


def test_dtype_and_config_override(fixtures_dir, tmp_path):
    sd, model_string = _tiny_state_dict(fixtures_dir)
    torch.save({"model": sd}, tmp_path / "bare.pth")
    net = load_model(tmp_path / "bare.pth", dtype=torch.float64, config=model_string)
    assert net.pose_token.dtype == torch.float64


# --------------------------------------------------------------------------- official layout, released configs
def _released_like(base, small: bool):
    """Released config; ``small`` shrinks widths/depths but keeps the 768-token state and the head type."""
    if not small:
        return base
    return replace(base, enc_embed_dim=128, enc_depth=2, enc_num_heads=4, dec_embed_dim=64, dec_depth=2,
                   dec_num_heads=4, local_mem_size=32)


def _save_load_run(base, args_kind: str, small: bool, tmp_path: Path, frame_hw: tuple[int, int],
                   expected_keys: int | None = None):
    from frontends.cut3r.model.net import Cut3rNet

    cfg = _released_like(base, small)
    torch.manual_seed(0)
    net = Cut3rNet(cfg)
    state_dict = net.state_dict()
    probe = {k: state_dict[k].flatten()[:16].clone() for k in ("pose_token", "enc_blocks.0.attn.qkv.weight")}
    n_keys = len(state_dict)
    if expected_keys is not None:  # the official key counts (spec §2)
        assert n_keys == expected_keys
    path = save_official(tmp_path / f"official_{args_kind}.pth", state_dict, format_model_string(cfg), args_kind)
    del net, state_dict
    gc.collect()
    loaded = load_model(path)
    assert loaded.cfg == cfg and len(loaded.state_dict()) == n_keys
    for key, values in probe.items():
        assert torch.equal(loaded.state_dict()[key].flatten()[:16], values)
    out = loaded.session(update="ttsa3r").step(torch.rand(1, 3, *frame_hw) * 2 - 1)
    assert out["pts3d_in_self_view"].shape == (1, *frame_hw, 3)
    assert out["camera_pose"].shape == (1, 7) and bool(torch.isfinite(out["camera_pose"]).all())
    del loaded
    gc.collect()


@pytest.mark.parametrize("args_kind", ["namespace", "hydra"])
@pytest.mark.parametrize("base", [CUT3R_512_DPT, CUT3R_224_LINEAR], ids=["512dpt", "224linear"])
def test_official_layout_small_variant(tmp_path, base, args_kind):
    _save_load_run(base, args_kind, small=True, tmp_path=tmp_path, frame_hw=(48, 64))


@pytest.mark.slow
@pytest.mark.parametrize("args_kind", ["namespace", "hydra"])
def test_official_layout_full_size_512_dpt(tmp_path, args_kind):
    _save_load_run(CUT3R_512_DPT, args_kind, small=False, tmp_path=tmp_path, frame_hw=(384, 512), expected_keys=1248)


@pytest.mark.slow
def test_official_layout_full_size_224_linear(tmp_path):
    _save_load_run(CUT3R_224_LINEAR, "hydra", small=False, tmp_path=tmp_path, frame_hw=(224, 224), expected_keys=1056)
