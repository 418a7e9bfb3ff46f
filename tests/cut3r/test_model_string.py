"""Parsing the official model string without eval (spec §1.2-1.4)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from frontends.cut3r.config import CUT3R_224_LINEAR, CUT3R_512_DPT, Cut3rNetConfig
from frontends.cut3r.model_string import format_model_string, parse_model_string
from slam.errors import CheckpointError

# The two released architectures, as the spec (§1.3) quotes them from the official yaml (multi-line on purpose).
SPEC_512_DPT = """ARCroco3DStereo(ARCroco3DStereoConfig(freeze='encoder', state_size=768, state_pe='2d', pos_embed='RoPE100',
  rgb_head=True, pose_head=True, patch_embed_cls='ManyAR_PatchEmbed', img_size=(512, 512), head_type='dpt',
  output_mode='pts3d+pose', depth_mode=('exp', -inf, inf), conf_mode=('exp', 1, inf),
  pose_mode=('exp', -inf, inf), enc_embed_dim=1024, enc_depth=24, enc_num_heads=16, dec_embed_dim=768,
  dec_depth=12, dec_num_heads=12, landscape_only=False))"""
SPEC_224_LINEAR = """ARCroco3DStereo(ARCroco3DStereoConfig(freeze='encoder', state_size=768, state_pe='2d', pos_embed='RoPE100',
  rgb_head=True, pose_head=True,  img_size=(224, 224), head_type='linear', output_mode='pts3d+pose',
  depth_mode=('exp', -inf, inf), conf_mode=('exp', 1, inf), pose_mode=('exp', -inf, inf),
  enc_embed_dim=1024, enc_depth=24, enc_num_heads=16, dec_embed_dim=768, dec_depth=12, dec_num_heads=12))"""

TINY = ("ARCroco3DStereo(ARCroco3DStereoConfig(state_size=16, head_type='dpt', output_mode='pts3d+pose', "
        "pose_head=True, enc_embed_dim=128, enc_depth=2, enc_num_heads=4, dec_embed_dim=64, dec_depth=4, "
        "dec_num_heads=4, pos_embed='RoPE100'))")


def test_full_size_strings_give_the_released_configs():
    assert parse_model_string(SPEC_512_DPT) == CUT3R_512_DPT
    assert parse_model_string(SPEC_224_LINEAR) == CUT3R_224_LINEAR


@pytest.mark.parametrize("head", ["dpt", "linear"])
def test_fixture_strings(fixtures_dir, head):
    text = (fixtures_dir / f"model_{head}.config.txt").read_text()
    cfg = parse_model_string(text)
    assert cfg.head_type == head
    assert (cfg.enc_embed_dim, cfg.enc_depth, cfg.dec_embed_dim, cfg.dec_depth, cfg.state_size) == (128, 2, 64, 4, 16)
    assert cfg.depth_mode == ("exp", -math.inf, math.inf) and cfg.conf_mode == ("exp", 1, math.inf)
    assert cfg.img_size == (64, 64) and cfg.rgb_head and cfg.pose_head
    # the official loader's rewrites
    assert cfg.patch_embed_cls == "PatchEmbedDust3R"
    assert cfg.landscape_only is False


def test_rewrites_landscape_only_true_and_many_ar():
    text = TINY.replace("state_size=16", "state_size=16, landscape_only=True, patch_embed_cls='ManyAR_PatchEmbed'")
    cfg = parse_model_string(text)
    assert cfg.landscape_only is False and cfg.patch_embed_cls == "PatchEmbedDust3R"


@pytest.mark.parametrize("cfg", [CUT3R_512_DPT, CUT3R_224_LINEAR, Cut3rNetConfig(), replace(CUT3R_512_DPT, mlp_ratio=2.0)])
def test_format_round_trip(cfg):
    text = format_model_string(cfg)
    assert text.startswith("ARCroco3DStereo(ARCroco3DStereoConfig(") and "landscape_only=False" in text
    assert parse_model_string(text) == cfg


def test_ttt3r_update_type_is_accepted_and_ignored():
    cfg = parse_model_string(TINY.replace("state_size=16", "state_size=16, model_update_type='ttt3r'"))
    assert cfg == parse_model_string(TINY)


def test_int_coerced_to_float_field():
    assert parse_model_string(TINY.replace("state_size=16", "state_size=16, mlp_ratio=2")).mlp_ratio == 2.0


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (TINY.replace("state_size=16", "state_size=16, bogus_field=3"), "'bogus_field'"),
        (TINY.replace("state_size=16", "state_size='16'"), "'state_size'"),
        (TINY.replace("state_size=16", "state_size=16, rgb_head=1"), "'rgb_head'"),
        (TINY.replace("state_size=16", "state_size=16, state_size=8"), "given twice"),
        (TINY.replace("state_size=16", "state_size=int('16')"), "'state_size' is not a literal"),
        (TINY.replace("state_size=16", "state_size=nan"), "'state_size' is not a literal"),
        (TINY.replace("head_type='dpt'", "head_type='conv'"), "'head_type'"),
        (TINY.replace("output_mode", "depth_mode=('exp', 0, inf), output_mode"), "'depth_mode'"),
        (TINY.replace("ARCroco3DStereo(", "CroCoNet(", 1), "ARCroco3DStereo"),
        ("ARCroco3DStereo(dict(state_size=16))", "ARCroco3DStereoConfig"),
        ("ARCroco3DStereo(ARCroco3DStereoConfig(16))", "keyword arguments only"),
        ("ARCroco3DStereo(ARCroco3DStereoConfig(**{'a': 1}))", "'**'"),
        ("ARCroco3DStereo(ARCroco3DStereoConfig(state_size=16)", "syntax"),
        ("ARCroco3DStereo(ARCroco3DStereoConfig(state_size=-'a'))", "non-number"),
    ],
)
def test_bad_strings_raise_naming_the_problem(text, needle):
    with pytest.raises(CheckpointError) as info:
        parse_model_string(text, source="ckpt.pth")
    assert needle in str(info.value)
    assert "ckpt.pth" in str(info.value)


def test_code_in_the_string_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    text = TINY.replace("state_size=16", f"state_size=__import__('os').system('touch {marker}')")
    with pytest.raises(CheckpointError, match="not a literal"):
        parse_model_string(text)
    assert not marker.exists()
