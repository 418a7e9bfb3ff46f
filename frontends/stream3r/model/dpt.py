"""DPT heads for the world points (4 channels) and the depth (2 channels).

Both read the patch tokens (``[:, :, 5:]``) of four aggregator layers, frame by frame:
shared ``norm`` -> ``projects.l`` (1x1) -> + UV embedding -> ``resize_layers.l`` (x4, x2, x1, /2) ->
``scratch.layer{l+1}_rn`` -> RefineNet fusion -> ``output_conv1`` -> bilinear resize to (H, W) -> + UV
embedding -> ``output_conv2``. Residual conv units add ``relu(x)`` on the skip path (the official ReLU is
in place). Bilinear resizes use ``align_corners=True``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from frontends.stream3r.config import Stream3rNetConfig

HEAD_PATCH = 14  # the DPT heads keep the official default patch size
LAST_HIDDEN = 32
UV_WEIGHT = 0.1
UV_OMEGA = 100.0


def uv_embedding(hh: int, ww: int, channels: int, aspect: float, dtype: torch.dtype, device) -> torch.Tensor:
    """``[channels, hh, ww]`` sin/cos embedding of the normalised UV grid (times 0.1).

    ``u`` spans ``+-sx*(ww-1)/ww`` and ``v`` ``+-sy*(hh-1)/hh`` with ``(sx, sy) = (a, 1)/sqrt(a^2+1)``,
    ``a = W/H``; channels ``[sin(u w), cos(u w), sin(v w), cos(v w)]``, ``w_k = 100^(-k/Q)``,
    ``Q = channels/4``, products and sin/cos in float64, result cast to float32 then ``dtype``.
    """
    diag = math.sqrt(aspect * aspect + 1.0)
    sx, sy = aspect / diag, 1.0 / diag
    u = torch.linspace(-sx * (ww - 1) / ww, sx * (ww - 1) / ww, ww, dtype=dtype, device=device)
    v = torch.linspace(-sy * (hh - 1) / hh, sy * (hh - 1) / hh, hh, dtype=dtype, device=device)
    q = channels // 4
    omega = torch.arange(q, dtype=torch.float64, device=device) / q
    omega = 1.0 / UV_OMEGA**omega
    au = u.double()[:, None] * omega  # [ww, Q]
    av = v.double()[:, None] * omega  # [hh, Q]
    eu = torch.cat((au.sin(), au.cos()), dim=-1).float()  # [ww, 2Q]
    ev = torch.cat((av.sin(), av.cos()), dim=-1).float()  # [hh, 2Q]
    emb = torch.cat((eu[None].expand(hh, -1, -1), ev[:, None].expand(-1, ww, -1)), dim=-1)
    return (emb * UV_WEIGHT).permute(2, 0, 1).to(dtype)


def _add_uv(x: torch.Tensor, width: int, height: int) -> torch.Tensor:
    emb = uv_embedding(x.shape[-2], x.shape[-1], x.shape[1], width / height, x.dtype, x.device)
    return x + emb[None]


class ResidualConvUnit(nn.Module):
    """``relu(x) + conv2(relu(conv1(relu(x))))`` (3x3 convs with bias)."""

    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        return self.conv2(F.relu(self.conv1(x))) + x


class FeatureFusionBlock(nn.Module):
    """``out_conv(resize(RCU2(x0 + RCU1(x1))))``; ``refinenet4`` has no ``resConfUnit1``."""

    def __init__(self, features: int, has_residual: bool = True):
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        if has_residual:
            self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)
        self.has_residual = has_residual

    def forward(self, x0: torch.Tensor, x1: torch.Tensor | None = None,
                size: tuple[int, int] | None = None) -> torch.Tensor:
        out = x0 + self.resConfUnit1(x1) if self.has_residual else x0
        out = self.resConfUnit2(out)
        if size is None:
            out = F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            out = F.interpolate(out, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(out)


class Scratch(nn.Module):
    """Holder of the fusion layers (``scratch.*`` keys)."""

    def __init__(self, features: int, out_channels: tuple[int, ...], out_dim: int):
        super().__init__()
        for i, oc in enumerate(out_channels):
            setattr(self, f"layer{i + 1}_rn", nn.Conv2d(oc, features, 3, padding=1, bias=False))
        self.refinenet1 = FeatureFusionBlock(features)
        self.refinenet2 = FeatureFusionBlock(features)
        self.refinenet3 = FeatureFusionBlock(features)
        self.refinenet4 = FeatureFusionBlock(features, has_residual=False)
        self.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        self.output_conv2 = nn.Sequential(nn.Conv2d(features // 2, LAST_HIDDEN, 3, padding=1), nn.ReLU(),
                                          nn.Conv2d(LAST_HIDDEN, out_dim, 1))


class DPTHead(nn.Module):
    """Dense head. ``activation``: ``'inv_log'`` (points, ``sign(x)*expm1(|x|)``) or ``'exp'`` (depth);
    the last channel is the confidence ``1 + exp(c)``."""

    def __init__(self, cfg: Stream3rNetConfig, out_dim: int, activation: str, frames_chunk: int = 8):
        super().__init__()
        d = 2 * cfg.embed_dim
        oc = cfg.dpt_out_channels
        self.layer_idx = cfg.dpt_intermediate_layer_idx
        self.activation = activation
        self.frames_chunk = frames_chunk
        self.norm = nn.LayerNorm(d, eps=1e-5)
        self.projects = nn.ModuleList(nn.Conv2d(d, c, 1) for c in oc)
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(oc[0], oc[0], kernel_size=4, stride=4),
            nn.ConvTranspose2d(oc[1], oc[1], kernel_size=2, stride=2),
            nn.Identity(),
            nn.Conv2d(oc[3], oc[3], kernel_size=3, stride=2, padding=1),
        ])
        self.scratch = Scratch(cfg.dpt_features, oc, out_dim)

    def forward(self, tokens: list[torch.Tensor], height: int, width: int, patch_start: int = 5
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Args:
            tokens: aggregator outputs ``[B, S, P, 2C]`` (all layers; the head picks its four).
            height, width: image size (multiples of 14).
        Returns:
            prediction ``[B, S, H, W, out_dim-1]`` and confidence ``[B, S, H, W]``.
        """
        b, s = tokens[0].shape[:2]
        preds, confs = [], []
        for start in range(0, s, self.frames_chunk):
            chunk = [tokens[i][:, start:start + self.frames_chunk] for i in self.layer_idx]
            pred, conf = self._forward_frames(chunk, height, width, patch_start)
            preds.append(pred.reshape(b, -1, *pred.shape[1:]))
            confs.append(conf.reshape(b, -1, *conf.shape[1:]))
        return torch.cat(preds, dim=1), torch.cat(confs, dim=1)

    def _forward_frames(self, layers: list[torch.Tensor], height: int, width: int, patch_start: int):
        ph, pw = height // HEAD_PATCH, width // HEAD_PATCH
        feats = []
        for level, x in enumerate(layers):
            x = x[:, :, patch_start:]
            x = self.norm(x.reshape(-1, x.shape[2], x.shape[3]))
            x = x.permute(0, 2, 1).reshape(x.shape[0], x.shape[-1], ph, pw)
            x = _add_uv(self.projects[level](x), width, height)
            feats.append(self.resize_layers[level](x))
        sc = self.scratch
        r1, r2, r3, r4 = (sc.layer1_rn(feats[0]), sc.layer2_rn(feats[1]), sc.layer3_rn(feats[2]),
                          sc.layer4_rn(feats[3]))
        out = sc.refinenet4(r4, size=r3.shape[2:])
        out = sc.refinenet3(out, r3, size=r2.shape[2:])
        out = sc.refinenet2(out, r2, size=r1.shape[2:])
        out = sc.refinenet1(out, r1)
        out = sc.output_conv1(out)
        out = F.interpolate(out, size=(ph * HEAD_PATCH, pw * HEAD_PATCH), mode="bilinear", align_corners=True)
        out = sc.output_conv2(_add_uv(out, width, height))
        fmap = out.permute(0, 2, 3, 1)
        values, conf = fmap[..., :-1], fmap[..., -1]
        if self.activation == "inv_log":
            values = torch.sign(values) * torch.expm1(values.abs())
        else:
            values = torch.exp(values)
        return values, 1 + conf.exp()
