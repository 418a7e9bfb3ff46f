"""Transformer building blocks shared by DINOv2, the aggregator and the camera head.

One block is ``x = x + ls1 * Attn(LN1(x)); x = x + ls2 * MLP(LN2(x))`` with an erf-GELU MLP (ratio 4) and
LayerScale. The attention optionally applies a per-head LayerNorm to q and k (``q_norm``/``k_norm``, one
LayerNorm over the head dim shared by all heads) and 2-D RoPE (base 100, :func:`kernels.rope2d.rope2d`), in
that order, then appends to a :class:`~frontends.stream3r.kv_cache.KVCache` when one is given, then runs
``scaled_dot_product_attention`` (scale ``head_dim ** -0.5``) with an optional additive float mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kernels.rope2d import rope2d


class LayerScale(nn.Module):
    """Per-channel scale ``x * gamma`` of a residual branch; ``gamma [dim]``."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    """``fc2(GELU_erf(fc1(x)))``."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int | None = None):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, out_dim or in_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention over ``x [B, N, dim]``.

    Args:
        dim: width; num_heads: heads (head dim ``dim / num_heads``).
        qk_norm: LayerNorm (eps 1e-5) over the head dim of q and k before RoPE.
        rope_base: 2-D RoPE base when ``forward`` receives positions.
    """

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = False, rope_base: float = 100.0):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.rope_base = rope_base
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.LayerNorm(self.head_dim, eps=1e-5) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim, eps=1e-5) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                cache=None) -> torch.Tensor:
        """Args:
            x: ``[B, N, dim]`` tokens.
            pos: ``[1 or B, N, 2]`` integer (row, col) RoPE positions, or None for no RoPE.
            mask: ``[N, N]`` additive float mask (0 allowed, -inf blocked), or None.
            cache: a KV cache; the tokens' post-RoPE K and V are appended and q attends to all of it.
        Returns:
            ``[B, N, dim]``.
        """
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if pos is not None:
            q = rope2d(q, pos, self.rope_base)
            k = rope2d(k, pos, self.rope_base)
        if cache is not None:
            k, v = cache.extend(k, v)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale (DINOv2: eps 1e-6; aggregator / camera trunk: eps 1e-5)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, eps: float = 1e-5,
                 qk_norm: bool = False, rope_base: float = 100.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qk_norm=qk_norm, rope_base=rope_base)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                cache=None) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), pos=pos, mask=mask, cache=cache))
        return x + self.ls2(self.mlp(self.norm2(x)))
