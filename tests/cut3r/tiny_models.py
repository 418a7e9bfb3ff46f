"""A tiny randomly initialised CUT3R-family network for tests that must not depend on ``../shared``."""

from __future__ import annotations

import torch

from frontends.cut3r.config import Cut3rNetConfig
from frontends.cut3r.model import Cut3rNet

TINY = dict(
    output_mode="pts3d+pose", head_type="linear", pose_head=True, rgb_head=True, pos_embed="RoPE100",
    state_size=24, state_pe="2d", local_mem_size=8, enc_embed_dim=64, enc_depth=1, enc_num_heads=4,
    dec_embed_dim=64, dec_depth=4, dec_num_heads=4, state_dec_num_heads=16, img_size=(64, 64),
)


def tiny_net(seed: int = 0, head_type: str = "linear", qk_gain: float = 4.0) -> Cut3rNet:
    """Random tiny net (eval mode, CPU). Every parameter gets N(0, 0.05) noise on top of the default init;
    the state decoder's cross-attention ``projq``/``projk`` are scaled by ``qk_gain`` so that the attention
    logits (and the TTT3R / TTSA3R gates) vary visibly."""
    torch.manual_seed(seed)
    net = Cut3rNet(Cut3rNetConfig(**{**TINY, "head_type": head_type}))
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.add_(torch.randn_like(p) * 0.05)
            if name.startswith("dec_blocks_state.") and ".cross_attn.proj" in name and name.split(".")[3] in (
                    "projq", "projk"):
                p.mul_(qk_gain)
    return net.eval()


def random_frames(n: int, height: int = 32, width: int = 48, seed: int = 0) -> torch.Tensor:
    """``[n,3,H,W]`` smooth-ish random images in [-1,1] (consecutive frames are correlated)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, height, width, generator=g) * 2 - 1
    drift = torch.rand(n, 3, height, width, generator=g) * 2 - 1
    t = torch.linspace(0, 1, n).view(n, 1, 1, 1)
    return (base * (1 - 0.5 * t) + drift * 0.5 * t).clamp(-1, 1)


def write_tiny_checkpoint(path, seed: int = 0, head_type: str = "linear"):
    """Save :func:`tiny_net` as a ``.safetensors`` checkpoint (model string in its metadata); returns the path."""
    from frontends.cut3r.checkpoint import write_safetensors
    from frontends.cut3r.model_string import format_model_string

    net = tiny_net(seed, head_type)
    return write_safetensors(path, net.state_dict(), format_model_string(net.cfg), sidecar=False)
