"""Parts shared by both heads: the pose MLP and the pose-conditioned ``final_transform`` blocks.

Both heads split the last decoder output ``[B,1+N,D]`` into the pose token ``[B,D]`` and the image
tokens ``[B,N,D]``; the pose token gives the camera pose (``pose_head``) and conditions two adaLN blocks
(``final_transform``) that turn the image tokens into the cross-view ("other view") tokens.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from frontends.cut3r.model.blocks import ConditionModulationBlock, Mlp


class PoseHead(nn.Module):
    """``[B,D] -> [B,7]`` raw pose (translation, quaternion wxyz) via ``mlp`` (D -> 4D -> 7)."""

    def __init__(self, dim: int):
        super().__init__()
        self.mlp = Mlp(dim, dim * 4, 7)

    def forward(self, pose_token: torch.Tensor) -> torch.Tensor:
        return self.mlp(pose_token)


def build_final_transform(dim: int, num_heads: int, depth: int = 2) -> nn.ModuleList:
    """The ``final_transform`` stack (2 adaLN blocks with float32 RoPE)."""
    return nn.ModuleList([ConditionModulationBlock(dim, num_heads, mlp_ratio=4.0) for _ in range(depth)])


def cross_tokens(final_transform: nn.ModuleList, tokens: torch.Tensor, pose_token: torch.Tensor,
                 pos: torch.Tensor) -> torch.Tensor:
    """Image tokens ``[B,N,D]`` -> cross-view tokens ``[B,N,D]`` conditioned on ``pose_token [B,D]``."""
    x = tokens
    for blk in final_transform:
        x = blk(x, pose_token, pos)
    return x
