"""DINOv2 ViT with 4 register tokens: the per-frame patch encoder (``aggregator.patch_embed``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from frontends.stream3r.config import Stream3rNetConfig
from frontends.stream3r.model.layers import Block


class PatchEmbed(nn.Module):
    """``proj``: conv 3 -> C, kernel = stride = patch size; output ``[B, N, C]`` row-major over the grid."""

    def __init__(self, patch_size: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class DinoV2(nn.Module):
    """Encoder of normalised images ``[B, 3, H, W]`` to the final-normed patch tokens ``[B, N, C]``."""

    def __init__(self, cfg: Stream3rNetConfig):
        super().__init__()
        c = cfg.embed_dim
        self.patch_size = cfg.patch_size
        self.grid = cfg.img_size // cfg.patch_size  # M: side of the position-embedding grid
        self.num_register_tokens = cfg.num_register_tokens
        self.patch_embed = PatchEmbed(cfg.patch_size, c)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid * self.grid, c))
        self.register_tokens = nn.Parameter(torch.zeros(1, cfg.num_register_tokens, c))
        self.mask_token = nn.Parameter(torch.zeros(1, c))  # training only
        self.blocks = nn.ModuleList(Block(c, cfg.patch_embed_num_heads, cfg.mlp_ratio, eps=1e-6)
                                    for _ in range(cfg.patch_embed_depth))
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self._pos_cache: tuple | None = None

    def position_embedding(self, h: int, w: int, dtype: torch.dtype) -> torch.Tensor:
        """``[1, 1 + h*w, C]``: the cls entry plus the M x M grid resized to ``h x w``.

        Resize: anti-aliased bicubic (``F.interpolate(..., antialias=True)``) in float32, skipped only for a
        square grid of exactly M x M patches. Cached while the parameter is unchanged.
        """
        pe = self.pos_embed
        key = (h, w, dtype, pe.device, pe.data_ptr(), pe._version)
        if self._pos_cache is not None and self._pos_cache[0] == key:
            return self._pos_cache[1]
        if h == w and h * w == self.grid * self.grid:
            out = pe.to(dtype)
        else:
            full = pe.float()
            c = full.shape[-1]
            grid = full[:, 1:].reshape(1, self.grid, self.grid, c).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
            grid = grid.permute(0, 2, 3, 1).reshape(1, h * w, c)
            out = torch.cat((full[:, :1], grid), dim=1).to(dtype)
        self._pos_cache = (key, out)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, 3, H, W]`` (ImageNet-normalised) -> patch tokens ``[B, (H/p)*(W/p), C]``."""
        b, _, hh, ww = x.shape
        h, w = hh // self.patch_size, ww // self.patch_size
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(b, -1, -1), tokens), dim=1)
        tokens = tokens + self.position_embedding(h, w, tokens.dtype)
        tokens = torch.cat((tokens[:, :1], self.register_tokens.expand(b, -1, -1), tokens[:, 1:]), dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)[:, 1 + self.num_register_tokens:]
