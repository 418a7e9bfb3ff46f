"""Multi-head attention with the statistics the TTT3R / TTSA3R state-update rules need: torch reference.

The attention output always comes from :func:`torch.nn.functional.scaled_dot_product_attention` (the
fused path); the statistics are computed from the same (already RoPE-rotated) q and k **without
materialising the [heads, Nq, Nk] attention maps**:

* ``mean_logit[b, s]`` = mean over heads h and keys j of the pre-softmax logits
  ``A[h, s, j] = scale * q_h[s] . k_h[j]``. Linear in k, so it equals
  ``scale / H * sum_h q_h[s] . mean_j(k_h[j])`` = one dot product of the head-concatenated query with the
  mean key. The official TTT3R gate is ``sigmoid`` of the mean of this over the decoder layers.
* ``head_logit_sum[b, s, j]`` = ``sum_h A[h, s, skip + j]`` for the keys from ``skip`` on = one
  ``[Nq, H*d] x [H*d, Nk - skip]`` product of head-concatenated q and k. TTSA3R uses its mean over layers
  and heads with the camera-pose key (index 0) excluded (``skip = 1``).

The tests compare against a reference that materialises the maps as the official code does
(``tests/kernels/reference.py``). This module is the torch reference; GPU kernels may be added later and must be tested against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class StatsRequest:
    """Which statistics a cross-attention call should return.

    ``mean_logit``: the TTT3R signal of this layer. ``head_logit_sum``: the TTSA3R logit matrix of this
    layer (summed over heads), restricted to keys ``skip_keys..Nk-1``.
    """

    mean_logit: bool = False
    head_logit_sum: bool = False
    skip_keys: int = 1

    @property
    def any(self) -> bool:
        return self.mean_logit or self.head_logit_sum


NO_STATS = StatsRequest()


@dataclass
class AttentionStats:
    """Statistics of one attention call (None when not requested).

    mean_logit: ``[B, Nq]`` mean over heads and all keys of the pre-softmax logits.
    head_logit_sum: ``[B, Nq, Nk - skip_keys]`` sum over heads of the pre-softmax logits.
    """

    mean_logit: torch.Tensor | None = None
    head_logit_sum: torch.Tensor | None = None


def _concat_heads(x: torch.Tensor) -> torch.Tensor:
    """``[B, H, N, d] -> [B, N, H*d]`` (head-major channel blocks)."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def attention_stats(q: torch.Tensor, k: torch.Tensor, scale: float, request: StatsRequest) -> AttentionStats:
    """Compute the requested statistics from rotated ``q [B,H,Nq,d]`` and ``k [B,H,Nk,d]`` (no attention maps)."""
    stats = AttentionStats()
    if not request.any:
        return stats
    heads = q.shape[1]
    q_cat = _concat_heads(q)  # [B, Nq, H*d]
    if request.mean_logit:
        k_mean = _concat_heads(k).mean(dim=1)  # [B, H*d]
        stats.mean_logit = torch.einsum("bnc,bc->bn", q_cat, k_mean) * (scale / heads)
    if request.head_logit_sum:
        k_cat = _concat_heads(k[:, :, request.skip_keys:])  # [B, Nk - skip, H*d]
        stats.head_logit_sum = torch.matmul(q_cat, k_cat.transpose(1, 2)) * scale
    return stats


def attention_with_stats(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, request: StatsRequest = NO_STATS
) -> tuple[torch.Tensor, AttentionStats]:
    """SDPA output ``[B,H,Nq,d]`` plus the requested :class:`AttentionStats`.

    Args:
        q: ``[B, H, Nq, d]`` rotated queries; k, v: ``[B, H, Nk, d]`` rotated keys and values.
        scale: logit scale (``d ** -0.5`` in every CUT3R attention).
    """
    out = F.scaled_dot_product_attention(q, k, v, scale=scale)
    return out, attention_stats(q, k, scale, request)
