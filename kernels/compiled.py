"""``torch.compile`` fast path for a network's per-view step, with the eager code as its reference.

:func:`compile_step` wraps a callable (e.g. :meth:`Cut3rNet.process_view`) in ``torch.compile`` with
static shapes: inductor fuses the element-wise work around the matrix products (RoPE, LayerNorm, GELU,
the update statistics) into a few generated kernels (Triton on CUDA, C++/OpenMP on CPU). The eager
function stays the reference: ``tests/kernels/test_compiled.py`` compares the two. The first call for a
new input shape compiles (seconds to minutes); later calls reuse the compiled graph.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import torch

F = TypeVar("F", bound=Callable)


def compile_step(fn: F, mode: str | None = None) -> F:
    """``torch.compile(fn, dynamic=False, mode=mode)``; ``mode`` e.g. ``'reduce-overhead'`` (CUDA graphs)."""
    return torch.compile(fn, dynamic=False, mode=mode)
