"""Output post-processing of the CUT3R heads, exactly in the official order of operations.

All functions take channel-first maps ``[B,C,H,W]`` (or ``[B,7]`` for the pose) and return channel-last
tensors: points ``[B,H,W,3]``, confidences ``[B,H,W]``, colours ``[B,H,W,3]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reg_points(xyz: torch.Tensor, pos_z: bool = False) -> torch.Tensor:
    """depth_mode 'exp': ``xyz / max(|xyz|, 1e-8) * expm1(|xyz|)`` on ``[..., 3]``.

    ``pos_z`` (linear head, self view only): first flip each vector so that z >= 0 (z == 0 -> zero vector).
    """
    if pos_z:
        xyz = xyz * torch.sign(xyz[..., -1:])
    d = xyz.norm(dim=-1, keepdim=True)
    xyz = xyz / d.clip(min=1e-8)
    return xyz * torch.expm1(d)


def reg_conf(x: torch.Tensor) -> torch.Tensor:
    """conf_mode ('exp', 1, inf): ``1 + exp(x)``."""
    return 1 + x.exp()


def points_and_conf(out: torch.Tensor, pos_z: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``out [B,4,H,W]`` -> (points ``[B,H,W,3]``, confidence ``[B,H,W]``)."""
    fmap = out.permute(0, 2, 3, 1)
    return reg_points(fmap[:, :, :, 0:3], pos_z=pos_z), reg_conf(fmap[:, :, :, 3])


def post_rgb(out: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``out [B,3,H,W]`` -> colour ``[B,H,W,3]`` in (-1,1): ``((sigmoid(x)(1-2eps)+eps) - 0.5) * 2``."""
    res = torch.sigmoid(out.permute(0, 2, 3, 1)) * (1 - 2 * eps) + eps
    return (res - 0.5) * 2


def post_pose(out: torch.Tensor) -> torch.Tensor:
    """Raw pose ``[B,7] = [t, q]`` -> ``[t * expm1(|t|)/max(|t|,1e-8), q/|q| with q_w >= 0]`` (``[B,7]``)."""
    trans = out[..., 0:3]
    quats = out[..., 3:7]
    d = trans.norm(dim=-1, keepdim=True)
    trans = trans * (torch.expm1(d) / d.clip(min=1e-8))
    quats = F.normalize(quats, p=2, dim=-1)
    quats = torch.where(quats[..., 0:1] < 0, -quats, quats)
    return torch.cat([trans, quats], dim=-1)
