"""The STream3R network: aggregator + camera head + point and depth DPT heads.

Batch entry point (official ``STream3R.forward`` at inference)::

    out = net(images, mode="causal" | "window" | "full", window=5)
    # images: [S, 3, H, W] or [B, S, 3, H, W] float32 in [0, 1], H and W multiples of 14
    # out: pose_enc [B,S,9], world_points [B,S,H,W,3], world_points_conf [B,S,H,W],
    #      depth [B,S,H,W,1], depth_conf [B,S,H,W]

Streaming: ``net.session(mode, window)`` returns a :class:`~frontends.stream3r.session.StreamSession`.
The heads always compute in float32 (autocast disabled around them), as the official code does.
"""

from __future__ import annotations

import torch
from torch import nn

from frontends.stream3r.config import Stream3rNetConfig
from frontends.stream3r.model.aggregator import PATCH_START, Aggregator
from frontends.stream3r.model.camera_head import CameraHead
from frontends.stream3r.model.dpt import DPTHead

MODES = ("causal", "window", "full")
OUTPUT_KEYS = ("pose_enc", "world_points", "world_points_conf", "depth", "depth_conf")


def frame_mask(frames: int, tokens_per_frame: int, mode: str, window: int, dtype: torch.dtype,
               device: torch.device) -> torch.Tensor | None:
    """Additive ``[S*P, S*P]`` mask of the batch modes (0 allowed, -inf blocked), None for ``full``.

    ``causal``: query frame i sees frames 0..i. ``window``: frame 0 (anchor) and frames
    ``max(1, i-window+1)..i``, i.e. at most ``window + 1`` frames (the batch mask of the official code).
    """
    if mode == "full":
        return None
    ids = torch.arange(frames, device=device)
    q, k = ids[:, None], ids[None, :]
    allowed = k <= q
    if mode == "window":
        allowed = allowed & ((k == 0) | (k > q - window))
    allowed = allowed.repeat_interleave(tokens_per_frame, 0).repeat_interleave(tokens_per_frame, 1)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
    return mask.masked_fill_(~allowed, float("-inf"))


class Stream3rNet(nn.Module):
    """STream3R with the official parameter names (``aggregator.*``, ``camera_head.*``, ``point_head.*``,
    ``depth_head.*``)."""

    def __init__(self, cfg: Stream3rNetConfig | None = None):
        super().__init__()
        self.cfg = cfg or Stream3rNetConfig()
        self.aggregator = Aggregator(self.cfg)
        self.camera_head = CameraHead(self.cfg)
        self.point_head = DPTHead(self.cfg, out_dim=4, activation="inv_log")
        self.depth_head = DPTHead(self.cfg, out_dim=2, activation="exp")

    def heads(self, tokens: list[torch.Tensor], height: int, width: int, camera_mask: torch.Tensor | None = None,
              camera_caches: list | None = None) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        """Camera, point and depth heads in float32 on the aggregator outputs ``[B, S, P, 2C]``.

        Returns the output dict (``OUTPUT_KEYS``) and the activated encoding of every camera iteration.
        """
        with torch.autocast(device_type=tokens[0].device.type, enabled=False):
            tokens = [t.float() for t in tokens]
            iters = self.camera_head(tokens[-1][:, :, 0], mask=camera_mask, caches=camera_caches)
            points, points_conf = self.point_head(tokens, height, width, PATCH_START)
            depth, depth_conf = self.depth_head(tokens, height, width, PATCH_START)
        out = {"pose_enc": iters[-1], "world_points": points, "world_points_conf": points_conf,
               "depth": depth, "depth_conf": depth_conf}
        return out, iters

    @torch.inference_mode()
    def forward(self, images: torch.Tensor, mode: str = "causal", window: int = 5) -> dict[str, torch.Tensor]:
        """Batch forward over a whole sequence (see module docs); ``window`` is the mask length of ``window`` mode."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if images.ndim == 4:
            images = images[None]
        if images.ndim != 5 or images.shape[2] != 3:
            raise ValueError(f"images must be [S,3,H,W] or [B,S,3,H,W], got {tuple(images.shape)}")
        s, hh, ww = images.shape[1], images.shape[3], images.shape[4]
        p = PATCH_START + (hh // self.cfg.patch_size) * (ww // self.cfg.patch_size)
        dtype = self.aggregator.camera_token.dtype
        mask = frame_mask(s, p, mode, window, dtype, images.device)
        tokens, _ = self.aggregator(images, mask=mask)
        camera_mask = frame_mask(s, 1, mode, window, torch.float32, images.device)
        out, _ = self.heads(tokens, hh, ww, camera_mask=camera_mask)
        return out

    def session(self, mode: str = "causal", window: int = 5, **kwargs):
        """A streaming session on this network (``mode`` ``'causal'`` or ``'window'``); see
        :class:`~frontends.stream3r.session.StreamSession` for the keyword arguments."""
        from frontends.stream3r.session import StreamSession

        return StreamSession(self, mode=mode, window=window, **kwargs)
