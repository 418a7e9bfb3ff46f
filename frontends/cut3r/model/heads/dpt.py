"""DPT head of the 512 model (official ``DPTPts3dPose``).

Inputs ``head_in = [feat [B,N,Cenc], I_a [B,N,D], I_b [B,N,D], last [B,1+N,D]]`` at image size (H, W),
h = H/16, w = W/16. Outputs (channel-last, float32):
``pts3d_in_self_view [B,H,W,3]``, ``conf_self [B,H,W]``, ``rgb [B,H,W,3]`` (if rgb), ``camera_pose [B,7]``,
``pts3d_in_other_view [B,H,W,3]``, ``conf [B,H,W]``.

Each DPT adapter (``dpt_self``, ``dpt_cross``, ``dpt_rgb``) maps the four token maps to 4 pyramid levels
(4h, 2h, h, h/2), projects them to 256 channels, fuses them coarse-to-fine with bilinear x2 upsampling
(align_corners=True) and ends with conv3x3 -> x2 -> conv3x3 -> ReLU -> conv1x1 at full resolution.

State-dict aliasing: ``scratch.layerK_rn`` and ``scratch.layer_rn.{K-1}`` are the same
conv registered twice (as in the official code), so both keys appear in ``state_dict()`` and a strict
load of the official checkpoint works.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from frontends.cut3r.model.heads.common import PoseHead, build_final_transform, cross_tokens
from frontends.cut3r.model.heads.postprocess import points_and_conf, post_pose, post_rgb

LAYER_DIMS = (96, 192, 384, 768)
FEATURE_DIM = 256
LAST_DIM = FEATURE_DIM // 2


def _upsample2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class ResidualConvUnit(nn.Module):
    """``conv2(relu(conv1(relu(x)))) + x`` with 3x3 convs (pad 1, bias); ``[B,C,h,w]``."""

    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, stride=1, padding=1)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(F.relu(x))))
        return out + x


class FusionBlock(nn.Module):
    """``out_conv(up2(RCU2(x + RCU1(skip))))``: ``[B,C,h,w]`` -> ``[B,C,2h,2w]``."""

    def __init__(self, features: int):
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, kernel_size=1, stride=1, padding=0)
        self.resConfUnit1 = ResidualConvUnit(features)  # noqa: N815 - official key name
        self.resConfUnit2 = ResidualConvUnit(features)  # noqa: N815

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        return self.out_conv(_upsample2(self.resConfUnit2(x)))


class DPTAdapter(nn.Module):
    """One DPT output adapter: four token maps -> ``[B, num_channels, H, W]`` (raw, before post-processing)."""

    def __init__(self, num_channels: int, dim_tokens: tuple[int, int, int, int], patch_size: int = 16):
        super().__init__()
        self.patch_size = patch_size
        d0, d1, d2, d3 = LAYER_DIMS
        self.act_postprocess = nn.ModuleList([
            nn.Sequential(nn.Conv2d(dim_tokens[0], d0, 1), nn.ConvTranspose2d(d0, d0, kernel_size=4, stride=4)),
            nn.Sequential(nn.Conv2d(dim_tokens[1], d1, 1), nn.ConvTranspose2d(d1, d1, kernel_size=2, stride=2)),
            nn.Sequential(nn.Conv2d(dim_tokens[2], d2, 1)),
            nn.Sequential(nn.Conv2d(dim_tokens[3], d3, 1), nn.Conv2d(d3, d3, kernel_size=3, stride=2, padding=1)),
        ])
        self.scratch = nn.Module()
        rn = [nn.Conv2d(d, FEATURE_DIM, kernel_size=3, stride=1, padding=1, bias=False) for d in LAYER_DIMS]
        for i, conv in enumerate(rn, start=1):
            setattr(self.scratch, f"layer{i}_rn", conv)
        self.scratch.layer_rn = nn.ModuleList(rn)  # same modules, second name (official aliasing)
        for i in range(1, 5):
            setattr(self.scratch, f"refinenet{i}", FusionBlock(FEATURE_DIM))
        self.head = nn.Sequential(
            nn.Conv2d(FEATURE_DIM, FEATURE_DIM // 2, kernel_size=3, stride=1, padding=1),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            nn.Conv2d(FEATURE_DIM // 2, LAST_DIM, kernel_size=3, stride=1, padding=1),
            nn.ReLU(),
            nn.Conv2d(LAST_DIM, num_channels, kernel_size=1, stride=1, padding=0),
        )

    def forward(self, tokens: list[torch.Tensor], image_size: tuple[int, int]) -> torch.Tensor:
        """tokens: four ``[B,N,C_i]`` maps; returns ``[B, num_channels, H, W]``."""
        h, w = image_size[0] // self.patch_size, image_size[1] // self.patch_size
        maps = []
        for idx, t in enumerate(tokens):
            b, _, c = t.shape
            # channels-last strided view, as the official rearrange produces (no .contiguous() after permute)
            grid = t.contiguous().view(b, h, w, c).permute(0, 3, 1, 2)
            maps.append(self.scratch.layer_rn[idx](self.act_postprocess[idx](grid)))
        sc = self.scratch
        path4 = sc.refinenet4(maps[3])[:, :, : maps[2].shape[2], : maps[2].shape[3]]
        path3 = sc.refinenet3(path4, maps[2])
        path2 = sc.refinenet2(path3, maps[1])
        path1 = sc.refinenet1(path2, maps[0])
        return self.head(path1)


class DPTPts3dPoseHead(nn.Module):
    """The DPT head with pose: keys ``dpt_self``, ``final_transform``, ``dpt_cross``, ``dpt_rgb``, ``pose_head``."""

    def __init__(self, enc_dim: int, dec_dim: int, dec_num_heads: int, rgb: bool = True, patch_size: int = 16):
        super().__init__()
        dims = (enc_dim, dec_dim, dec_dim, dec_dim)
        self.has_rgb = rgb
        self.dpt_self = DPTAdapter(4, dims, patch_size)
        self.final_transform = build_final_transform(dec_dim, dec_num_heads)
        self.dpt_cross = DPTAdapter(4, dims, patch_size)
        if rgb:
            self.dpt_rgb = DPTAdapter(3, dims, patch_size)
        self.pose_head = PoseHead(dec_dim)

    def forward(self, head_in: list[torch.Tensor], image_size: tuple[int, int], pos: torch.Tensor) -> dict:
        last = head_in[-1]
        pose_token = last[:, 0].clone()
        tokens = last[:, 1:]
        pose_raw = self.pose_head(pose_token)
        tokens_cross = cross_tokens(self.final_transform, tokens.clone(), pose_token, pos)
        layers = head_in[:-1] + [tokens]
        layers_cross = head_in[:-1] + [tokens_cross]

        out = {}
        out["pts3d_in_self_view"], out["conf_self"] = points_and_conf(self.dpt_self(layers, image_size))
        if self.has_rgb:
            out["rgb"] = post_rgb(self.dpt_rgb(layers, image_size))
        out["camera_pose"] = post_pose(pose_raw)
        out["pts3d_in_other_view"], out["conf"] = points_and_conf(self.dpt_cross(layers_cross, image_size))
        return out
