"""RoPE2D reference: against the textbook formula, negative positions, relative-position property,
float16 round-trip, and bit-equality with a position-table implementation built the official way."""

from __future__ import annotations

import pytest
import torch

from kernels.rope2d import ROPE_BASE, inverse_frequencies, rope2d, rope2d_fp16_roundtrip
from tests.kernels.reference import rope2d_direct


def _tokens(heads=3, n=7, dim=16, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, heads, n, dim, generator=g) * scale


def _positions(n=7, seed=0, low=-1, high=9):
    g = torch.Generator().manual_seed(seed + 100)
    return torch.randint(low, high, (2, n, 2), generator=g)


@pytest.mark.parametrize("dim", [4, 16, 48, 64])
def test_matches_direct_formula_including_negative_positions(dim):
    x, pos = _tokens(dim=dim), _positions()
    pos[:, 0] = -1  # the camera-pose token
    ours = rope2d(x, pos)
    assert ours.dtype == torch.float32 and ours.shape == x.shape
    assert torch.allclose(ours.double(), rope2d_direct(x, pos), atol=2e-6)


def test_zero_position_is_identity_and_minus_one_inverts_plus_one():
    x = _tokens()
    zero = torch.zeros(2, 7, 2, dtype=torch.long)
    assert torch.equal(rope2d(x, zero), x)
    plus = torch.ones(2, 7, 2, dtype=torch.long)
    assert torch.allclose(rope2d(rope2d(x, plus), -plus), x, atol=1e-6)
    # rows and columns act on different halves: a pure row shift leaves the second half unchanged
    rows_only = torch.stack([torch.full((2, 7), 3), torch.zeros(2, 7, dtype=torch.long)], dim=-1)
    out = rope2d(x, rows_only)
    assert torch.equal(out[..., 8:], x[..., 8:]) and not torch.allclose(out[..., :8], x[..., :8])


def test_logits_depend_only_on_relative_position():
    q, k = _tokens(n=5, seed=1), _tokens(n=5, seed=2)
    pq, pk = _positions(n=5, seed=3), _positions(n=5, seed=4)
    shift = torch.tensor([4, -2])
    a = rope2d(q, pq) @ rope2d(k, pk).transpose(-1, -2)
    b = rope2d(q, pq + shift) @ rope2d(k, pk + shift).transpose(-1, -2)
    assert torch.allclose(a, b, atol=1e-4)


def test_fp16_roundtrip():
    x, pos = _tokens(dim=32, scale=3.0), _positions()
    out = rope2d_fp16_roundtrip(x, pos)
    assert out.dtype == torch.float32
    assert torch.equal(out, rope2d(x.half(), pos).float())
    assert torch.equal(out, out.half().float())  # every value is a float16 number
    fp32 = rope2d(x, pos)
    assert torch.allclose(out, fp32, rtol=5e-3, atol=5e-3)
    assert not torch.equal(out, fp32)  # the round-trip really rounds


def _official_style(tokens, positions, base=ROPE_BASE):
    """Position-table formulation: tables for p in [pmin, pmax] built as float32 products cast to the
    tokens' dtype, looked up with F.embedding, then ``t * cos + rotate_half(t) * sin`` per half."""
    half = tokens.shape[-1] // 2
    pmin = min(int(positions.min()), 0)
    inv = 1.0 / (base ** (torch.arange(0, half, 2).float() / half))
    t = torch.arange(int(positions.max()) - pmin + 1, dtype=torch.float32) + pmin
    freqs = torch.einsum("i,j->ij", t, inv).to(tokens.dtype)
    freqs = torch.cat((freqs, freqs), dim=-1)
    cos, sin = freqs.cos(), freqs.sin()

    def rot(x):
        return torch.cat((-x[..., x.shape[-1] // 2:], x[..., : x.shape[-1] // 2]), dim=-1)

    def one(x, p):
        c = torch.nn.functional.embedding(p - pmin, cos)[:, None]
        s = torch.nn.functional.embedding(p - pmin, sin)[:, None]
        return x * c + rot(x) * s

    y, x = tokens.chunk(2, dim=-1)
    return torch.cat((one(y, positions[:, :, 0]), one(x, positions[:, :, 1])), dim=-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_bit_equal_to_table_formulation(dtype):
    x, pos = _tokens(dim=64, scale=2.0).to(dtype), _positions(low=-1, high=40)
    assert torch.equal(rope2d(x, pos), _official_style(x, pos))


def test_inverse_frequencies_and_input_checks():
    inv = inverse_frequencies(8)
    assert torch.allclose(inv, torch.tensor([1.0, 100 ** -0.25, 100 ** -0.5, 100 ** -0.75]))
    with pytest.raises(ValueError):
        rope2d(torch.zeros(1, 1, 3, 6), torch.zeros(1, 3, 2, dtype=torch.long))
    with pytest.raises(ValueError):
        rope2d(torch.zeros(1, 3, 8), torch.zeros(1, 3, 2, dtype=torch.long))
