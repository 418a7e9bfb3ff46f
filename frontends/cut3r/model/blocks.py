"""Transformer building blocks of the CUT3R-family network.

Parameter names follow the official state dict (``qkv``, ``proj``, ``projq/k/v``, ``norm1..3``,
``norm_y``, ``mlp.fc1/fc2``, ``norm1.norm``/``norm1.mlp.1`` for the modulated LayerNorm). Every
LayerNorm uses eps 1e-6, every Linear has a bias, GELU is the exact (erf) form, and there is no dropout.

Shapes: tokens ``[B, N, C]``; positions ``[B, N, 2]`` int64 (row, col) patch-grid coordinates or None
(no RoPE); per-head tensors ``[B, heads, N, C/heads]``. The tensor layouts (reshape/transpose order)
mirror the official code so that CPU float32 results agree to the last bit where possible.
"""

from __future__ import annotations

from enum import Enum

import torch
import torch.nn as nn

from kernels.attention import NO_STATS, AttentionStats, StatsRequest, attention_with_stats
from kernels.rope2d import rope2d, rope2d_fp16_roundtrip

LN_EPS = 1e-6


def layer_norm(dim: int) -> nn.LayerNorm:
    """The model's LayerNorm: affine, eps 1e-6."""
    return nn.LayerNorm(dim, eps=LN_EPS)


class RopeMode(str, Enum):
    """How an attention applies RoPE2D to q and k."""

    NONE = "none"  # no RoPE (pose retriever)
    FP32 = "fp32"  # decoders, final_transform, ray-map encoder
    FP16 = "fp16"  # CroCo image encoder: q/k rounded to float16 around RoPE


def apply_rope(x: torch.Tensor, pos: torch.Tensor | None, mode: RopeMode) -> torch.Tensor:
    """Rotate per-head tokens ``x [B,H,N,d]`` by ``pos [B,N,2]`` according to ``mode`` (no-op if pos is None)."""
    if mode is RopeMode.NONE or pos is None:
        return x
    if mode is RopeMode.FP16:
        return rope2d_fp16_roundtrip(x, pos)
    return rope2d(x.float(), pos).to(x.dtype)


class Mlp(nn.Module):
    """``fc2(GELU(fc1(x)))``: ``[..., in] -> [..., out]``."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int | None = None):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention with fused ``qkv``: ``[B,N,C] -> [B,N,C]``, scale ``(C/heads)^-0.5``."""

    def __init__(self, dim: int, num_heads: int, rope: RopeMode):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.rope = RopeMode(rope)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).transpose(1, 3)  # [B,H,3,N,d]
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        q = apply_rope(q, pos, self.rope)
        k = apply_rope(k, pos, self.rope)
        out, _ = attention_with_stats(q, k, v, self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class CrossAttention(nn.Module):
    """Multi-head cross-attention ``query [B,Nq,C]`` -> ``key/value [B,Nk,C]``, output ``[B,Nq,C]``.

    Optionally returns :class:`~kernels.attention.AttentionStats` of the pre-softmax logits (computed from
    the rotated q and k without materialising the maps); used by the state decoder for the update rules.
    """

    def __init__(self, dim: int, num_heads: int, rope: RopeMode):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.rope = RopeMode(rope)
        self.projq = nn.Linear(dim, dim)
        self.projk = nn.Linear(dim, dim)
        self.projv = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[B,N,C] -> [B,H,N,C/H]`` (a strided view)."""
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).permute(0, 2, 1, 3)

    def rotated_qkv(self, query, key, value, qpos, kpos) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Projected, RoPE-rotated ``q [B,H,Nq,d]``, ``k [B,H,Nk,d]`` and projected ``v [B,H,Nk,d]``."""
        q = apply_rope(self.heads(self.projq(query)), qpos, self.rope)
        k = apply_rope(self.heads(self.projk(key)), kpos, self.rope)
        v = self.heads(self.projv(value))
        return q, k, v

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        qpos: torch.Tensor | None,
        kpos: torch.Tensor | None,
        stats: StatsRequest = NO_STATS,
    ) -> tuple[torch.Tensor, AttentionStats]:
        b, nq, c = query.shape
        q, k, v = self.rotated_qkv(query, key, value, qpos, kpos)
        out, attn_stats = attention_with_stats(q, k, v, self.scale, stats)
        return self.proj(out.transpose(1, 2).reshape(b, nq, c)), attn_stats


class Block(nn.Module):
    """Pre-norm ViT block (CroCo encoder): ``x + attn(LN1 x)``, then ``x + mlp(LN2 x)``; ``[B,N,C]``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, rope: RopeMode):
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.attn = Attention(dim, num_heads, rope)
        self.norm2 = layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), pos)
        return x + self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    """Decoder block updating ``x [B,Nx,C]`` from memory ``y [B,Ny,C]`` (y itself is not changed).

    ``x += selfattn(LN1 x)``; ``x += crossattn(LN2 x, LN_y y)``; ``x += mlp(LN3 x)``.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, rope: RopeMode):
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.attn = Attention(dim, num_heads, rope)
        self.cross_attn = CrossAttention(dim, num_heads, rope)
        self.norm2 = layer_norm(dim)
        self.norm3 = layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm_y = layer_norm(dim)

    def forward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        xpos: torch.Tensor | None,
        ypos: torch.Tensor | None,
        stats: StatsRequest = NO_STATS,
    ) -> tuple[torch.Tensor, AttentionStats]:
        x = x + self.attn(self.norm1(x), xpos)
        y_normed = self.norm_y(y)
        cross, attn_stats = self.cross_attn(self.norm2(x), y_normed, y_normed, xpos, ypos, stats)
        x = x + cross
        x = x + self.mlp(self.norm3(x))
        return x, attn_stats


class ModLN(nn.Module):
    """adaLN: ``LN(x) * (1 + scale) + shift`` with ``(shift, scale) = chunk2(Linear(SiLU(mod)))``.

    x ``[B,N,C]``, mod ``[B,M]``; shift is the first half. Keys: ``norm.*``, ``mlp.1.*``.
    """

    def __init__(self, dim: int, mod_dim: int):
        super().__init__()
        self.norm = layer_norm(dim)
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(mod_dim, dim * 2))

    def forward(self, x: torch.Tensor, mod: torch.Tensor) -> torch.Tensor:
        shift, scale = self.mlp(mod).chunk(2, dim=-1)
        return self.norm(x) * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class ConditionModulationBlock(nn.Module):
    """The head's ``final_transform`` block: self-attention + MLP with adaLN conditioned on the pose token.

    x ``[B,N,C]`` image tokens, mod ``[B,C]`` pose token, pos ``[B,N,2]``.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = ModLN(dim, dim)
        self.attn = Attention(dim, num_heads, RopeMode.FP32)
        self.norm2 = ModLN(dim, dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, mod: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x, mod), pos)
        return x + self.mlp(self.norm2(x, mod))
