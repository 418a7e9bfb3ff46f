"""Linear head of the 224 model (official ``LinearPts3dPose``).

Only the last decoder output ``last [B,1+N,D]`` is used. Per-token MLPs (D -> 4D -> K*p*p) are unpatchified
with ``pixel_shuffle(p)`` (p = 16): output pixel (p*y+i, p*x+j) of channel c is element ``c*p*p + p*i + j``
of token (y, x). Outputs as for the DPT head; the *self* points are first flipped so that z >= 0.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from frontends.cut3r.model.blocks import Mlp
from frontends.cut3r.model.heads.common import PoseHead, build_final_transform, cross_tokens
from frontends.cut3r.model.heads.postprocess import points_and_conf, post_pose, post_rgb


class LinearPts3dPoseHead(nn.Module):
    """Keys: ``proj``, ``rgb_proj`` (if rgb), ``pose_head``, ``final_transform``, ``cross_proj``."""

    def __init__(self, dec_dim: int, dec_num_heads: int, rgb: bool = True, patch_size: int = 16,
                 mlp_ratio: float = 4.0):
        super().__init__()
        self.patch_size = patch_size
        self.has_rgb = rgb
        hidden = int(mlp_ratio * dec_dim)
        self.proj = Mlp(dec_dim, hidden, 4 * patch_size**2)
        if rgb:
            self.rgb_proj = Mlp(dec_dim, hidden, 3 * patch_size**2)
        self.pose_head = PoseHead(dec_dim)
        self.final_transform = build_final_transform(dec_dim, dec_num_heads)
        self.cross_proj = Mlp(dec_dim, hidden, 4 * patch_size**2)

    def _unpatchify(self, feat: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """``[B,N,K*p*p] -> [B,K,H,W]``."""
        b = feat.shape[0]
        h, w = image_size[0] // self.patch_size, image_size[1] // self.patch_size
        return F.pixel_shuffle(feat.transpose(-1, -2).view(b, -1, h, w), self.patch_size)

    def forward(self, head_in: list[torch.Tensor], image_size: tuple[int, int], pos: torch.Tensor) -> dict:
        last = head_in[-1]
        pose_token = last[:, 0]
        tokens = last[:, 1:]
        pose_raw = self.pose_head(pose_token)
        tokens_cross = cross_tokens(self.final_transform, tokens, pose_token, pos)

        out = {}
        self_map = self._unpatchify(self.proj(tokens), image_size)
        out["pts3d_in_self_view"], out["conf_self"] = points_and_conf(self_map, pos_z=True)
        if self.has_rgb:
            out["rgb"] = post_rgb(self._unpatchify(self.rgb_proj(tokens), image_size))
        out["camera_pose"] = post_pose(pose_raw)
        cross_map = self._unpatchify(self.cross_proj(tokens_cross), image_size)
        out["pts3d_in_other_view"], out["conf"] = points_and_conf(cross_map)
        return out
