"""The fast-weight (test-time-training) maths of tttLRM: Newton-Schulz orthogonalisation and the GLU update.

Shapes: fast weights ``W0 [d,h]`` (gate), ``W1 [h,d]`` (down),
``W2 [d,h]`` (up); tokens ``[T, d]``; per-token learning rates ``[T, 3]``. All float32 except the
Newton-Schulz step, which runs in ``ns_dtype`` (bfloat16 in the official code).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Newton-Schulz quintic coefficients (a, b, c), as in the Muon optimiser
NS_COEFFS = (3.4445, -4.7750, 2.0315)
NS_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp64": torch.float64}


def newton_schulz(g: torch.Tensor, steps: int, dtype: torch.dtype) -> torch.Tensor:
    """Approximate orthogonalisation of a 2-D matrix ``g [m1, m2]``; the result stays in ``dtype``.

    The iteration runs on the wide orientation (transposed when m1 > m2), starts from ``g / (|g|_F + 1e-7)``
    and applies ``X <- a X + (b A + (c A) A) X`` with ``A = X X^T``; every intermediate is rounded to ``dtype``.
    """
    a, b, c = NS_COEFFS
    x = g.to(dtype)
    transposed = x.shape[0] > x.shape[1]
    if transposed:
        x = x.T
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        gram = x @ x.T
        poly = b * gram + (c * gram) @ gram
        x = a * x + poly @ x
    return x.T if transposed else x


def column_norms(w: torch.Tensor) -> torch.Tensor:
    """L2 norm of every column of ``w [rows, cols]`` (over the row axis), shape ``[1, cols]``."""
    return w.norm(dim=0, keepdim=True)


def glu_apply(x: torch.Tensor, w0: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """The fast MLP ``(silu(x W0) * (x W2)) W1`` for ``x [T, d]``; returns ``[T, d]``."""
    return (F.silu(x @ w0) * (x @ w2)) @ w1


def glu_update(weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor], ref_norms: tuple[torch.Tensor, ...],
               k: torch.Tensor, v: torch.Tensor, lr: torch.Tensor, ns_steps: int,
               ns_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One fast-weight update on a chunk of tokens.

    Args:
        weights: current ``(W0 [d,h], W1 [h,d], W2 [d,h])``.
        ref_norms: column norms of the checkpoint fast weights (see :func:`column_norms`).
        k, v: ``[S, d]`` keys and values of the chunk (k L2-normalised per token).
        lr: ``[S, 3]`` per-token learning rates (eta0, eta1, eta2).
        ns_steps: Newton-Schulz steps (0: the gradient is only Frobenius-normalised in ``ns_dtype``).
        ns_dtype: dtype of the Newton-Schulz step.

    Returns:
        the updated weights, each column rescaled to its reference norm.
    """
    w0, w1, w2 = weights
    gate = k @ w0
    up = k @ w2
    back = v @ w1.T
    sig = torch.sigmoid(gate)
    silu_gate = gate * sig
    g1 = (silu_gate * up * lr[:, 1:2]).T @ v
    g0 = (k * lr[:, 0:1]).T @ (back * up * sig * (1.0 + gate * (1.0 - sig)))
    g2 = (k * lr[:, 2:3]).T @ (back * silu_gate)
    new = []
    for w, g, ref in zip((w0, w1, w2), (g0, g1, g2), ref_norms):
        w = w + newton_schulz(g, ns_steps, ns_dtype)
        w = w / (column_norms(w) + 1e-5) * ref
        new.append(w.to(torch.float32))
    return new[0], new[1], new[2]
