"""The aggregator: DINOv2 patch tokens + camera/register tokens, alternating frame/global attention.

Per frame the token sequence is ``[camera (1), registers (4), patches (N)]`` (P = 5 + N tokens, width C).
Slot 0 of ``camera_token``/``register_token`` is used by the first frame of a sequence (frame 0 of a
batch call, or the first frame after the streaming caches were cleared), slot 1 by every other frame.
RoPE positions: patch (row r, col c) -> (r + 1, c + 1); the 5 special tokens sit at (0, 0).
"""

from __future__ import annotations

import torch
from torch import nn

from frontends.stream3r.config import Stream3rNetConfig
from frontends.stream3r.model.dino import DinoV2
from frontends.stream3r.model.layers import Block

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PATCH_START = 5  # camera + 4 registers


def token_positions(h: int, w: int, device: torch.device) -> torch.Tensor:
    """``[1, 5 + h*w, 2]`` int64 (row, col) RoPE positions of one frame's tokens."""
    rows = torch.arange(1, h + 1, device=device).repeat_interleave(w)
    cols = torch.arange(1, w + 1, device=device).repeat(h)
    grid = torch.stack((rows, cols), dim=-1)
    special = torch.zeros(PATCH_START, 2, dtype=grid.dtype, device=device)
    return torch.cat((special, grid), dim=0)[None]


class Aggregator(nn.Module):
    """Images -> list of ``aggregator_depth`` tensors ``[B, S, P, 2C]`` (concat of frame and global block outputs)."""

    def __init__(self, cfg: Stream3rNetConfig):
        super().__init__()
        c = cfg.embed_dim
        self.patch_size = cfg.patch_size
        self.depth = cfg.aggregator_depth
        self.patch_embed = DinoV2(cfg)
        self.camera_token = nn.Parameter(torch.zeros(1, 2, 1, c))
        self.register_token = nn.Parameter(torch.zeros(1, 2, cfg.num_register_tokens, c))

        def block() -> Block:
            return Block(c, cfg.aggregator_num_heads, cfg.mlp_ratio, eps=1e-5, qk_norm=True, rope_base=cfg.rope_base)

        self.frame_blocks = nn.ModuleList(block() for _ in range(cfg.aggregator_depth))
        self.global_blocks = nn.ModuleList(block() for _ in range(cfg.aggregator_depth))
        self.register_buffer("_resnet_mean", torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("_resnet_std", torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1), persistent=False)

    def embed(self, images: torch.Tensor, first_is_anchor: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens of every frame before the first block.

        Args:
            images: ``[B, S, 3, H, W]`` in [0, 1].
            first_is_anchor: frame 0 of ``images`` takes slot 0 (start of a sequence).
        Returns:
            tokens ``[B, S, P, C]`` and the DINOv2 patch tokens ``[B, S, N, C]``.
        """
        b, s, _, hh, ww = images.shape
        x = (images - self._resnet_mean) / self._resnet_std
        patches = self.patch_embed(x.reshape(b * s, 3, hh, ww))
        patches = patches.reshape(b, s, patches.shape[1], patches.shape[2])
        slots = torch.ones(s, dtype=torch.long, device=images.device)
        if first_is_anchor:
            slots[0] = 0
        camera = self.camera_token[0, slots].expand(b, -1, -1, -1)  # [B, S, 1, C]
        registers = self.register_token[0, slots].expand(b, -1, -1, -1)
        tokens = torch.cat((camera.to(patches.dtype), registers.to(patches.dtype), patches), dim=2)
        return tokens, patches

    def forward(self, images: torch.Tensor, mask: torch.Tensor | None = None, caches: list | None = None,
                first_is_anchor: bool = True) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Run the alternating attention.

        Args:
            images: ``[B, S, 3, H, W]`` in [0, 1], H and W multiples of the patch size.
            mask: ``[S*P, S*P]`` additive mask for the global blocks (batch mode), or None.
            caches: one KV cache per global block (streaming), or None.
            first_is_anchor: frame 0 takes the first-frame slot.
        Returns:
            (``[out_0 .. out_{depth-1}]`` each ``[B, S, P, 2C]``, DINOv2 patch tokens ``[B, S, N, C]``).
        """
        b, s, _, hh, ww = images.shape
        if hh % self.patch_size or ww % self.patch_size:
            raise ValueError(f"image size {hh}x{ww} is not a multiple of the patch size {self.patch_size}")
        tokens, patches = self.embed(images, first_is_anchor)
        p, c = tokens.shape[2], tokens.shape[3]
        pos = token_positions(hh // self.patch_size, ww // self.patch_size, images.device)
        pos_global = pos.repeat(1, s, 1)
        outputs = []
        x = tokens.reshape(b * s, p, c)
        for i in range(self.depth):
            x = self.frame_blocks[i](x, pos=pos)
            frame_out = x.reshape(b, s, p, c)
            g = self.global_blocks[i](x.reshape(b, s * p, c), pos=pos_global, mask=mask,
                                      cache=None if caches is None else caches[i])
            outputs.append(torch.cat((frame_out, g.reshape(b, s, p, c)), dim=-1))
            x = g.reshape(b * s, p, c)
        return outputs, patches
