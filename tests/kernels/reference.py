"""Slow reference implementations of the kernels, for tests: explicit attention maps and RoPE2D written out."""

from __future__ import annotations

import torch

from kernels.attention import AttentionStats
from kernels.rope2d import ROPE_BASE


def explicit_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference with materialised maps: ``(softmax(A) @ v, A)`` with ``A = (q @ k^T) * scale`` ``[B,H,Nq,Nk]``.

    This is how the official TTT3R/TTSA3R code obtains its logits. Memory O(H*Nq*Nk).
    """
    logits = (q @ k.transpose(-2, -1)) * scale
    return logits.softmax(dim=-1) @ v, logits


def stats_from_logits(logits: torch.Tensor, skip_keys: int = 1) -> AttentionStats:
    """The :class:`AttentionStats` computed the explicit way from ``logits [B,H,Nq,Nk]`` (test reference)."""
    return AttentionStats(
        mean_logit=logits.mean(dim=(1, 3)),
        head_logit_sum=logits[:, :, :, skip_keys:].sum(dim=1),
    )


def rope2d_direct(tokens: torch.Tensor, positions: torch.Tensor, base: float = ROPE_BASE) -> torch.Tensor:
    """Textbook formula in float64 (per-pair rotation written out). Same shapes as :func:`rope2d`."""
    t = tokens.double()
    head_dim = t.shape[-1]
    half, quarter = head_dim // 2, head_dim // 4
    j = torch.arange(quarter, dtype=torch.float64, device=t.device)
    inv_freq = base ** (-2.0 * j / half)
    out = torch.empty_like(t)
    for axis in (0, 1):
        p = positions[:, :, axis].double()[:, None, :, None]  # [B,1,N,1]
        ang = p * inv_freq  # [B,1,N,quarter]
        c, s = ang.cos(), ang.sin()
        lo = t[..., axis * half: axis * half + quarter]
        hi = t[..., axis * half + quarter: (axis + 1) * half]
        out[..., axis * half: axis * half + quarter] = lo * c - hi * s
        out[..., axis * half + quarter: (axis + 1) * half] = hi * c + lo * s
    return out
