"""Key/value caches of the streaming session.

A :class:`KVCache` holds the keys and values of one attention layer for the frames seen so far,
``[B, heads, L, Hd]`` with ``L = frames * tokens_per_frame``, frames in arrival order. Keys are stored as
the attention produced them (after q/k norm and RoPE); they are never rotated again.

Storage is a preallocated buffer written in place (no per-step concatenation):

* causal mode (``max_frames=None``): the buffer grows by doubling, so appends are amortised O(1);
* window mode (``max_frames = window + 2``): anchor + ``window`` kept frames + the current one. After each
  step :meth:`evict` keeps frame 0 (the anchor) and the last ``window`` frames (the current frame
  included), by moving them down inside the buffer. The buffer never grows, so memory is flat.
"""

from __future__ import annotations

import torch


class KVCache:
    """K/V buffer of one attention layer.

    Args:
        tokens_per_frame: tokens one frame contributes (P in the aggregator, 1 in the camera head).
        max_frames: capacity in frames (window mode) or None to grow without bound (causal mode).
        initial_frames: first allocation in causal mode.
    """

    def __init__(self, tokens_per_frame: int, max_frames: int | None = None, initial_frames: int = 8):
        self.tokens_per_frame = tokens_per_frame
        self.max_frames = max_frames
        self._initial = max_frames if max_frames is not None else initial_frames
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None
        self.length = 0  # tokens held

    @property
    def frames(self) -> int:
        """Frames currently held."""
        return self.length // self.tokens_per_frame

    @property
    def empty(self) -> bool:
        return self.length == 0

    def _allocate(self, like_k: torch.Tensor, like_v: torch.Tensor, frames: int) -> None:
        b, h, _, d = like_k.shape
        n = frames * self.tokens_per_frame
        k = like_k.new_empty((b, h, n, d))
        v = like_v.new_empty((b, h, n, like_v.shape[-1]))
        if self._k is not None and self.length:
            k[:, :, :self.length] = self._k[:, :, :self.length]
            v[:, :, :self.length] = self._v[:, :, :self.length]
        self._k, self._v = k, v

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``k, v [B, heads, n, Hd]`` (n a multiple of ``tokens_per_frame``); return views of all held K/V."""
        n = k.shape[2]
        if n % self.tokens_per_frame:
            raise ValueError(f"KV cache expects whole frames of {self.tokens_per_frame} tokens, got {n}")
        needed = self.length + n
        if self._k is not None and (self._k.shape[:2] != k.shape[:2] or self._k.shape[-1] != k.shape[-1]
                                    or self._k.dtype != k.dtype or self._v.dtype != v.dtype):
            raise ValueError("KV cache: batch, heads, head dim or dtype changed within a session")
        if self._k is None or needed > self._k.shape[2]:
            frames = needed // self.tokens_per_frame
            if self.max_frames is not None:
                if frames > self.max_frames:
                    raise ValueError(f"KV cache capacity {self.max_frames} frames exceeded ({frames})")
                capacity = self.max_frames
            else:
                capacity = max(self._initial, frames, 2 * (self._k.shape[2] // self.tokens_per_frame)
                               if self._k is not None else 0)
            self._allocate(k, v, capacity)
        self._k[:, :, self.length:needed] = k
        self._v[:, :, self.length:needed] = v
        self.length = needed
        return self._k[:, :, :needed], self._v[:, :, :needed]

    def evict(self, window: int) -> None:
        """Keep the anchor frame and the last ``window`` frames (nothing to do while at most ``window + 1``)."""
        p = self.tokens_per_frame
        if self.frames <= window + 1:
            return
        start = self.length - window * p
        kept = window * p
        self._k[:, :, p:p + kept] = self._k[:, :, start:self.length].clone()
        self._v[:, :, p:p + kept] = self._v[:, :, start:self.length].clone()
        self.length = p + kept

    def clear(self) -> None:
        """Drop all frames (the buffer is kept for reuse)."""
        self.length = 0
