"""Pillow's ``Image.resize`` (BICUBIC, LANCZOS) for uint8 images, computed with torch on any device.

The learned frontends' official preprocessing resizes with Pillow on the CPU. This module computes the
same result, bit for bit, on the tensor's device (a GPU in practice), so the image can be uploaded once
as uint8 and resized, cropped and normalised there.

Pillow's 8-bit resampler (``libImaging/Resample.c``), reproduced here:

* separable, horizontal pass first, then vertical; a pass runs only when that side changes size;
* for output sample ``i`` of a side scaled from ``n_in`` to ``n_out``: ``scale = n_in / n_out``,
  ``fs = max(scale, 1)``, ``support = filter_support * fs``, ``center = (i + 0.5) * scale``; the taps are
  the input samples ``x`` in ``[int(center - support + 0.5), int(center + support + 0.5))`` (clipped to
  the image) with weights ``filter((x - center + 0.5) / fs)`` normalised to sum 1;
* weights are fixed point: ``k = int(w * 2**22 + 0.5)`` (``- 0.5`` for negative ``w``, truncation toward
  zero); a pass computes ``acc = 2**21 + sum(k * pixel)`` and stores ``clamp(acc >> 22, 0, 255)`` as uint8;
* filters: bicubic with ``a = -0.5`` (support 2), Lanczos-3 ``sinc(x) sinc(x/3)`` (support 3).

The integer sums are evaluated as float64 matrix products (exact: every product and partial sum is an
integer below 2**53), so the result equals Pillow's exactly.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

PRECISION_BITS = 22  # 32 - 8 - 2, Pillow's fixed-point precision for 8-bit images


def _bicubic(x: float) -> float:
    a = -0.5
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return 0.0


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x *= math.pi
    return math.sin(x) / x


def _lanczos(x: float) -> float:
    return _sinc(x) * _sinc(x / 3.0) if -3.0 <= x < 3.0 else 0.0


FILTERS = {"bicubic": (_bicubic, 2.0), "lanczos": (_lanczos, 3.0)}


@lru_cache(maxsize=64)
def fixed_point_weights(n_in: int, n_out: int, filter_name: str) -> np.ndarray:
    """Pillow's integer weights for one side as a dense ``[n_out, n_in]`` float64 matrix (integer values)."""
    if n_in < 1 or n_out < 1:
        raise ValueError(f"cannot resample {n_in} samples to {n_out}")
    filt, filter_support = FILTERS[filter_name]
    scale = n_in / n_out
    filterscale = max(scale, 1.0)
    support = filter_support * filterscale
    weights = np.zeros((n_out, n_in), dtype=np.float64)
    one = float(1 << PRECISION_BITS)
    for i in range(n_out):
        center = (i + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), n_in)
        taps = [filt((x - center + 0.5) / filterscale) for x in range(xmin, xmax)]
        total = sum(taps)
        for j, w in enumerate(taps):
            w = w / total if total != 0.0 else w
            weights[i, xmin + j] = float(int(w * one - 0.5) if w < 0 else int(w * one + 0.5))
    return weights


def _pass(image: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """One fixed-point pass along the last axis: ``image [..., n_in]`` (integer-valued float64)."""
    acc = image @ weights.T + float(1 << (PRECISION_BITS - 1))
    return torch.floor(acc / float(1 << PRECISION_BITS)).clamp_(0.0, 255.0)


def resize_uint8(image: torch.Tensor, size_hw: tuple[int, int], filter_name: str) -> torch.Tensor:
    """Resize ``image [C, H, W]`` uint8 to ``size_hw = (h, w)`` exactly as Pillow's ``Image.resize``.

    Args:
        image: channels-first uint8 tensor on any device.
        size_hw: output ``(height, width)`` in pixels.
        filter_name: ``'bicubic'`` or ``'lanczos'`` (Pillow's ``BICUBIC`` / ``LANCZOS``).

    Returns:
        ``[C, h, w]`` uint8 on the input's device.
    """
    if image.dtype != torch.uint8 or image.ndim != 3:
        raise ValueError(f"expected a [C,H,W] uint8 tensor, got {image.dtype} {tuple(image.shape)}")
    if filter_name not in FILTERS:
        raise ValueError(f"unknown filter {filter_name!r} (use one of {sorted(FILTERS)})")
    (h_in, w_in), (h_out, w_out) = image.shape[1:], size_hw
    x = image.to(torch.float64)
    if w_out != w_in:
        wx = torch.from_numpy(fixed_point_weights(w_in, w_out, filter_name)).to(image.device)
        x = _pass(x, wx)
    if h_out != h_in:
        wy = torch.from_numpy(fixed_point_weights(h_in, h_out, filter_name)).to(image.device)
        x = _pass(x.transpose(1, 2), wy).transpose(1, 2)
    return x.to(torch.uint8)
