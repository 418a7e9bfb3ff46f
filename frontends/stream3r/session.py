"""Streaming inference on one :class:`~frontends.stream3r.model.net.Stream3rNet`::

    session = net.session(mode="causal")          # or mode="window", window=5
    out = session.step(img)                       # img: float32 [1,3,H,W] in [0,1], H, W multiples of 14
    session.reset()                               # clear the caches: the next frame starts a new sequence

``step`` returns this frame's outputs only (the official ``get_last_prediction()``): ``pose_enc [1,1,9]``,
``world_points [1,1,H,W,3]``, ``world_points_conf [1,1,H,W]``, ``depth [1,1,H,W,1]``, ``depth_conf [1,1,H,W]``
(float32, on the network's device), plus ``descriptor [1,C]`` when ``descriptor=True`` (mean DINOv2 patch
token, L2-normalised; not an official output). Earlier predictions are not kept.

Per step: DINOv2 + tokens (first-frame slot while the caches are empty), every global block attends to
its cache plus the current frame (no mask), the camera head's trunk blocks likewise with one cache per
(iteration, block), then the DPT heads on the frame alone. In ``window`` mode every cache is trimmed
after the step to the anchor (frame 0) plus the last ``window`` frames including the current one, so the
next frame attends to up to ``window + 2`` frames -- the official streaming behaviour, one frame more than
the batch window mask. Caches live in fixed buffers in window mode (flat memory) and in doubling buffers
in causal mode (memory grows with the sequence).
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F

from frontends.stream3r.kv_cache import KVCache
from frontends.stream3r.model.aggregator import PATCH_START

STREAM_MODES = ("causal", "window")


class StreamSession:
    """Streaming state (KV caches) of one image stream.

    Args:
        net: the network (eval mode; steps run under ``torch.inference_mode``).
        mode: ``'causal'`` (cache every frame) or ``'window'`` (anchor + last ``window`` frames).
        window: window length (official value 5).
        autocast_dtype: e.g. ``torch.bfloat16``: run the aggregator under autocast on the network's device
            type (the heads stay float32). None: plain float32.
        descriptor: also return ``descriptor``.
        return_internals: also return ``pose_enc_iters [1,1,4,9]``, ``patch_tokens [1,1,N,C]`` and the
            aggregator outputs ``agg_tokens`` (list of ``[1,1,P,2C]``) for debugging and parity checks.
    """

    def __init__(self, net, mode: str = "causal", window: int = 5, autocast_dtype: torch.dtype | None = None,
                 descriptor: bool = False, return_internals: bool = False):
        if mode not in STREAM_MODES:
            raise ValueError(f"streaming mode must be one of {STREAM_MODES}, got {mode!r}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.net = net
        self.mode = mode
        self.window = window
        self.autocast_dtype = autocast_dtype
        self.descriptor = descriptor
        self.return_internals = return_internals
        self.frames_seen = 0  # frames since the last reset
        self._size: tuple[int, int] | None = None
        self._agg: list[KVCache] = []
        self._cam: list[list[KVCache]] = []

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Empty every cache; the next step is the first frame of a new sequence (first-frame slot)."""
        for cache in self._agg:
            cache.clear()
        for row in self._cam:
            for cache in row:
                cache.clear()
        self.frames_seen = 0
        self._size = None

    def _ensure_caches(self, tokens_per_frame: int) -> None:
        capacity = self.window + 2 if self.mode == "window" else None
        if not self._agg or self._agg[0].tokens_per_frame != tokens_per_frame:
            cfg = self.net.cfg
            self._agg = [KVCache(tokens_per_frame, capacity) for _ in range(cfg.aggregator_depth)]
            self._cam = [[KVCache(1, capacity) for _ in range(cfg.camera_trunk_depth)]
                         for _ in range(cfg.camera_iterations)]

    @property
    def cache_lengths(self) -> tuple[int, int]:
        """Tokens held now by every aggregator cache and by every camera cache."""
        if not self._agg:
            return 0, 0
        return self._agg[0].length, self._cam[0][0].length

    # ------------------------------------------------------------------ step
    @torch.inference_mode()
    def step(self, image: torch.Tensor) -> dict:
        """Process one frame ``[1, 3, H, W]`` (or ``[B, 1, 3, H, W]``) in [0, 1]; return its outputs."""
        if image.ndim == 4:
            image = image[:, None]
        if image.ndim != 5 or image.shape[1] != 1 or image.shape[2] != 3:
            raise ValueError(f"step() takes one frame [1,3,H,W] or [B,1,3,H,W], got {tuple(image.shape)}")
        hh, ww = image.shape[-2:]
        if self._size is not None and self._size != (hh, ww):
            raise ValueError(f"frame size {hh}x{ww} differs from the session's {self._size[0]}x{self._size[1]}; "
                             "reset() the session first")
        patch = self.net.cfg.patch_size
        p = PATCH_START + (hh // patch) * (ww // patch)
        self._ensure_caches(p)
        first = self._agg[0].empty
        device_type = image.device.type
        ctx = (torch.autocast(device_type=device_type, dtype=self.autocast_dtype)
               if self.autocast_dtype is not None else nullcontext())
        with ctx:
            tokens, patches = self.net.aggregator(image, caches=self._agg, first_is_anchor=first)
        out, iters = self.net.heads(tokens, hh, ww, camera_caches=self._cam)
        attended = self.cache_lengths
        if self.mode == "window":
            for cache in self._agg:
                cache.evict(self.window)
            for row in self._cam:
                for cache in row:
                    cache.evict(self.window)
        self._size = (hh, ww)
        self.frames_seen += 1
        if self.descriptor:
            out["descriptor"] = F.normalize(patches.float().mean(dim=2)[:, 0], dim=-1)
        if self.return_internals:
            out["pose_enc_iters"] = torch.stack(iters, dim=2)
            out["patch_tokens"] = patches
            out["agg_tokens"] = tokens
            out["kv_len_attended"] = attended
            out["kv_len_kept"] = self.cache_lengths
        return out
