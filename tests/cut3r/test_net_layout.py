"""The module tree reproduces the official state-dict layout of the released models (``spec`` §2), built
on the meta device (no memory), and rejects configurations it does not implement."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from frontends.cut3r.config import CUT3R_224_LINEAR, CUT3R_512_DPT
from frontends.cut3r.model import Cut3rNet
from slam.errors import ConfigError


def _meta_net(cfg) -> Cut3rNet:
    with torch.device("meta"):
        return Cut3rNet(cfg)


def _group(net: Cut3rNet, prefix: str) -> int:
    return sum(p.numel() for n, p in net.named_parameters() if n.startswith(prefix))


def test_released_512_dpt_layout():
    net = _meta_net(CUT3R_512_DPT)
    sd = net.state_dict()
    assert len(sd) == 1248
    assert sum(v.numel() for v in sd.values()) == 803_261_138  # with the aliased DPT convs counted twice
    assert sum(p.numel() for p in net.parameters()) == 793_307_858  # unique parameters
    groups = {"enc_blocks.": 302_309_376, "dec_blocks.": 113_439_744, "dec_blocks_state.": 113_439_744,
              "pose_retriever.": 152_305_152, "enc_blocks_ray_map.": 25_192_448,
              "downstream_head.dpt_self.": 20_201_668, "downstream_head.dpt_cross.": 20_201_668,
              "downstream_head.dpt_rgb.": 20_201_539, "downstream_head.final_transform.": 18_900_480,
              "downstream_head.pose_head.": 2_383_879}
    assert {k: _group(net, k) for k in groups} == groups
    head = net.downstream_head.dpt_self.scratch
    assert head.layer1_rn is head.layer_rn[0] and "downstream_head.dpt_self.scratch.layer_rn.3.weight" in sd
    assert net.dec_blocks_state[0].cross_attn.num_heads == 16 and net.dec_blocks[0].cross_attn.num_heads == 12


def test_released_224_linear_layout():
    net = _meta_net(CUT3R_224_LINEAR)
    sd = net.state_dict()
    assert len(sd) == 1056
    assert sum(v.numel() for v in sd.values()) == 748_443_655
    assert tuple(sd["downstream_head.proj.fc2.weight"].shape) == (1024, 3072)


@pytest.mark.parametrize("field,value", [
    ("head_type", "conv"), ("output_mode", "pts3d"), ("landscape_only", True), ("pos_embed", "cosine"),
    ("depth_mode", ("exp", 0, 10)), ("state_pe", "3d"), ("patch_size", 8),
])
def test_unsupported_config_is_rejected(field, value):
    cfg = dataclasses.replace(CUT3R_224_LINEAR, **{field: value})
    with pytest.raises(ConfigError, match=field):
        _meta_net(cfg)
