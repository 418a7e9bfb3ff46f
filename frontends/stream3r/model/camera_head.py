"""Camera head: iterative refinement of the 9-d pose encoding.

Input: the camera token of the last aggregator layer ``[B, S, 2C]``. Four iterations; each modulates the
same normalised token with (shift, scale, gate) from the embedding of the running *raw* encoding, runs
the trunk (attention across frames: batch mask or per-iteration KV caches), and adds the branch's delta.
Output of an iteration: ``[t(3), q_xyzw(4), relu(fov_h), relu(fov_w)]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from frontends.stream3r.config import Stream3rNetConfig
from frontends.stream3r.model.layers import Block, Mlp

POSE_DIM = 9


def activate_pose(raw: torch.Tensor) -> torch.Tensor:
    """Translation and quaternion unchanged, the two fields of view through ReLU."""
    return torch.cat((raw[..., :7], F.relu(raw[..., 7:])), dim=-1)


class CameraHead(nn.Module):
    """``[B, S, 2C]`` camera tokens -> list of ``camera_iterations`` activated encodings ``[B, S, 9]``."""

    def __init__(self, cfg: Stream3rNetConfig):
        super().__init__()
        d = 2 * cfg.embed_dim
        self.iterations = cfg.camera_iterations
        self.trunk = nn.ModuleList(Block(d, cfg.camera_num_heads, cfg.mlp_ratio, eps=1e-5)
                                   for _ in range(cfg.camera_trunk_depth))
        self.token_norm = nn.LayerNorm(d, eps=1e-5)
        self.trunk_norm = nn.LayerNorm(d, eps=1e-5)
        self.empty_pose_tokens = nn.Parameter(torch.zeros(1, 1, POSE_DIM))
        self.embed_pose = nn.Linear(POSE_DIM, d)
        self.poseLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 3 * d))
        self.adaln_norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.pose_branch = Mlp(d, d // 2, POSE_DIM)

    def forward(self, camera_tokens: torch.Tensor, mask: torch.Tensor | None = None,
                caches: list[list] | None = None) -> list[torch.Tensor]:
        """Args:
            camera_tokens: ``[B, S, 2C]`` token 0 of the last aggregator layer.
            mask: ``[S, S]`` additive mask for the trunk (batch mode), or None.
            caches: ``caches[iteration][block]`` KV caches (streaming), or None.
        Returns:
            the activated encoding ``[B, S, 9]`` of every iteration (the last is ``pose_enc``).
        """
        b, s, _ = camera_tokens.shape
        tokens = self.token_norm(camera_tokens)
        normed = self.adaln_norm(tokens)
        raw = None
        outputs = []
        for it in range(self.iterations):
            source = self.empty_pose_tokens.expand(b, s, -1) if raw is None else raw
            shift, scale, gate = self.poseLN_modulation(self.embed_pose(source)).chunk(3, dim=-1)
            z = gate * (normed * (1 + scale) + shift) + tokens
            for j, block in enumerate(self.trunk):
                z = block(z, mask=mask, cache=None if caches is None else caches[it][j])
            delta = self.pose_branch(self.trunk_norm(z))
            raw = delta if raw is None else raw + delta
            outputs.append(activate_pose(raw))
        return outputs
