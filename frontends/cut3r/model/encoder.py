"""CroCo image encoder: patch embedding + ViT blocks (+ the unused ray-map encoder's building blocks).

The modules are owned by :class:`~frontends.cut3r.model.net.Cut3rNet` under their official top-level
names (``patch_embed``, ``enc_blocks``, ``enc_norm``, ...); this file builds them and runs them.

Image encoder:
``img [B,3,H,W]`` (H, W multiples of 16, values in [-1,1]) -> Conv2d(k=16,s=16) -> tokens ``[B,N,C]``
(N = H/16 * W/16, row-major over the patch grid) -> ``enc_depth`` blocks whose q/k go through float16
around RoPE -> ``enc_norm`` -> ``feat [B,N,C]``. Positions ``pos [B,N,2]`` are int64 (row, col).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from frontends.cut3r.model.blocks import Block, RopeMode

_GRID_CACHE: dict[tuple[int, int, str], torch.Tensor] = {}


def grid_positions(h: int, w: int, batch: int, device: torch.device) -> torch.Tensor:
    """int64 ``[batch, h*w, 2]`` (row, col) of a row-major ``h x w`` patch grid."""
    key = (h, w, str(device))
    grid = _GRID_CACHE.get(key)
    if grid is None:
        grid = torch.cartesian_prod(torch.arange(h, device=device), torch.arange(w, device=device))
        if len(_GRID_CACHE) > 32:
            _GRID_CACHE.clear()
        _GRID_CACHE[key] = grid
    return grid.view(1, h * w, 2).expand(batch, -1, -1).clone()


class PatchEmbed(nn.Module):
    """``[B,in_chans,H,W] -> ([B,N,dim], pos [B,N,2])`` with a 16x16 stride-16 conv (key ``proj``)."""

    def __init__(self, in_chans: int, dim: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = img.shape
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {p}")
        x = self.proj(img)
        pos = grid_positions(x.shape[2], x.shape[3], b, img.device)
        return x.flatten(2).transpose(1, 2), pos


def build_encoder_blocks(depth: int, dim: int, num_heads: int, mlp_ratio: float, rope: RopeMode) -> nn.ModuleList:
    """``depth`` CroCo blocks. The image encoder uses ``RopeMode.FP16``; the ray-map encoder ``FP32``."""
    return nn.ModuleList([Block(dim, num_heads, mlp_ratio, rope) for _ in range(depth)])


def run_encoder(
    img: torch.Tensor, patch_embed: PatchEmbed, blocks: nn.ModuleList, norm: nn.LayerNorm
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode ``img [B,3,H,W]`` -> ``(feat [B,N,C] after the final norm, pos [B,N,2])``."""
    x, pos = patch_embed(img)
    for blk in blocks:
        x = blk(x, pos)
    return norm(x), pos
