"""2-D rotary position embedding (RoPE2D, base 100): the pure-torch reference.

This is the torch reference implementation used on every device; a fused GPU kernel may be added later
next to it (``kernels/`` is the place), and must be tested against this function.

Semantics, for one head vector ``t`` of size ``Dh``
(``Dh % 4 == 0``) at patch-grid position ``(py, px)`` (int64, may be negative, e.g. the camera-pose
token at ``(-1, -1)``):

* the first half ``t[:Dh/2]`` is rotated with the row position ``py``, the second half with ``px``;
* inside each half of size ``D = Dh/2`` the rotation pairs are ``(j, j + D/2)`` ("rotate-half",
  not interleaved): ``t' = t * cos(a) + rotate_half(t) * sin(a)`` with
  ``rotate_half([x1, x2]) = [-x2, x1]`` and ``a_j = a_{j+D/2} = p * inv_freq_j``;
* ``inv_freq_j = 1 / 100 ** (2j / D)`` for ``j < D/2``, computed in float32.

Arithmetic (chosen to reproduce the official pure-torch fallback bit for bit): the angle
``float32(p) * inv_freq`` is rounded once in float32, then cast to the tokens' dtype, and ``cos``/``sin``
and the rotation are evaluated in the tokens' dtype, one rounding per operation. The CroCo image
encoder calls it on float16 copies of q and k (:func:`rope2d_fp16_roundtrip`); every other attention
uses float32 (:func:`rope2d`).
"""

from __future__ import annotations

import threading

import torch

#: frequency base of the released CUT3R models (``pos_embed='RoPE100'``)
ROPE_BASE = 100.0

_LOCK = threading.Lock()
_INV_FREQ: dict[tuple, torch.Tensor] = {}


def inverse_frequencies(half_dim: int, base: float = ROPE_BASE, device: torch.device | str = "cpu") -> torch.Tensor:
    """``inv_freq[j] = 1 / base ** (2j / half_dim)`` for ``j < half_dim / 2``, float32 ``[half_dim // 2]``.

    Cached per (half_dim, base, device).
    """
    key = (half_dim, base, str(device))
    inv = _INV_FREQ.get(key)
    if inv is None:
        exponents = torch.arange(0, half_dim, 2, device=device, dtype=torch.float32) / half_dim
        inv = 1.0 / (base**exponents)
        with _LOCK:
            _INV_FREQ[key] = inv
    return inv


def cos_sin(positions: torch.Tensor, half_dim: int, dtype: torch.dtype, base: float = ROPE_BASE
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of the angles of integer ``positions [B,N]`` for one half of a head: ``[B,1,N,half_dim]``.

    Angle ``float32(p) * inv_freq`` (one float32 rounding), cast to ``dtype``, duplicated to both
    rotation partners, then cos/sin evaluated in ``dtype``. This is element for element what a
    position-indexed cos/sin table built the same way contains, without needing the position range
    (which would cost a device-to-host synchronisation per call on GPU).
    """
    inv_freq = inverse_frequencies(half_dim, base, positions.device)
    angles = (positions.to(torch.float32)[..., None] * inv_freq).to(dtype)
    angles = torch.cat((angles, angles), dim=-1)[:, None]
    return angles.cos(), angles.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope2d(tokens: torch.Tensor, positions: torch.Tensor, base: float = ROPE_BASE) -> torch.Tensor:
    """Apply RoPE2D in the dtype of ``tokens``.

    Args:
        tokens: ``[B, heads, N, Dh]`` per-head vectors (q or k), ``Dh % 4 == 0``.
        positions: ``[B, N, 2]`` integer ``(row, col)`` patch-grid positions; negative values allowed.
    Returns:
        ``[B, heads, N, Dh]`` rotated tokens (a new tensor, same dtype).
    """
    if tokens.ndim != 4 or positions.ndim != 3 or positions.shape[-1] != 2:
        raise ValueError(f"rope2d expects tokens [B,H,N,D] and positions [B,N,2], got {tuple(tokens.shape)}, "
                         f"{tuple(positions.shape)}")
    head_dim = tokens.shape[-1]
    if head_dim % 4 != 0:
        raise ValueError(f"rope2d needs a head dim divisible by 4, got {head_dim}")
    if torch.is_autocast_enabled(tokens.device.type):  # RoPE arithmetic is defined in the tokens' dtype
        with torch.autocast(device_type=tokens.device.type, enabled=False):
            return rope2d(tokens, positions, base)
    half = head_dim // 2
    rotated = []
    for axis, part in enumerate((tokens[..., :half], tokens[..., half:])):
        cos, sin = cos_sin(positions[:, :, axis], half, tokens.dtype, base)
        rotated.append(part * cos + _rotate_half(part) * sin)
    return torch.cat(rotated, dim=-1)


def rope2d_fp16_roundtrip(tokens: torch.Tensor, positions: torch.Tensor, base: float = ROPE_BASE) -> torch.Tensor:
    """The CroCo image-encoder variant: cast to float16, rotate in float16, cast back to ``tokens.dtype``.

    Net effect ``f32(f16(rope_f16(f16(t))))``: reproduces the official encoder, whose q and k go through
    float16 before RoPE. Without it, outputs move by ~1e-4..1e-3 (see the fixtures README).
    """
    return rope2d(tokens.to(torch.float16), positions, base).to(tokens.dtype)
