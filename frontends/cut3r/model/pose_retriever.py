"""The pose retriever (official ``LocalMemory``): a small key/value memory that predicts the pose token.

Dimensions: ``Cenc`` encoder width, ``D`` decoder width; memory ``mem [B, M, 2D]`` (M = local_mem_size).
Its blocks are decoder blocks of width 2D with ``dec_num_heads`` heads and no RoPE.

* ``inquire(g, mem)``: ``g [B,1,Cenc]`` (mean encoder token) -> pose token ``[B,1,D]``:
  ``x = [proj_q(g), masked_token]`` ``[B,1,2D]`` passes through ``read_blocks`` (cross-attending to mem);
  the second half of x is the answer.
* ``update_mem(mem, g, p)``: ``p [B,1,D]`` (refined pose token) -> new memory ``[B,M,2D]``: mem passes
  through ``write_blocks`` cross-attending to ``[proj_q(g), p]``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from frontends.cut3r.model.blocks import DecoderBlock, RopeMode


class LocalMemory(nn.Module):
    """Pose retriever. Keys: ``proj_q``, ``masked_token [1,1,D]``, ``mem [1,M,2D]``, ``write_blocks``, ``read_blocks``."""

    def __init__(self, size: int, k_dim: int, v_dim: int, num_heads: int, depth: int = 2, mlp_ratio: float = 4.0):
        super().__init__()
        self.v_dim = v_dim
        self.proj_q = nn.Linear(k_dim, v_dim)
        self.masked_token = nn.Parameter(torch.zeros(1, 1, v_dim))
        self.mem = nn.Parameter(torch.zeros(1, size, 2 * v_dim))
        self.write_blocks = nn.ModuleList(
            [DecoderBlock(2 * v_dim, num_heads, mlp_ratio, RopeMode.NONE) for _ in range(depth)]
        )
        self.read_blocks = nn.ModuleList(
            [DecoderBlock(2 * v_dim, num_heads, mlp_ratio, RopeMode.NONE) for _ in range(depth)]
        )

    def initial_memory(self, batch: int = 1) -> torch.Tensor:
        """The learned initial memory, ``[batch, M, 2D]`` (a copy)."""
        return self.mem.expand(batch, -1, -1).clone()

    def inquire(self, query: torch.Tensor, mem: torch.Tensor) -> torch.Tensor:
        """Pose token ``[B,1,D]`` for the global image feature ``query [B,1,Cenc]``."""
        x = self.proj_q(query)
        x = torch.cat([x, self.masked_token.expand(x.shape[0], -1, -1)], dim=-1)
        for blk in self.read_blocks:
            x, _ = blk(x, mem, None, None)
        return x[..., -self.v_dim:]

    def update_mem(self, mem: torch.Tensor, feat_k: torch.Tensor, feat_v: torch.Tensor) -> torch.Tensor:
        """New memory ``[B,M,2D]`` after writing ``[proj_q(feat_k [B,1,Cenc]), feat_v [B,1,D]]``."""
        feat = torch.cat([self.proj_q(feat_k), feat_v], dim=-1)
        for blk in self.write_blocks:
            mem, _ = blk(mem, feat, None, None)
        return mem
