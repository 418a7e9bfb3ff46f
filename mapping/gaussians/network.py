"""The tttLRM network: ray tokens -> blocks (per-view attention, fast-weight GLU, MLP) -> one Gaussian per pixel.

Parameter names follow the official state dict, so the official
checkpoints load strictly. The duplicated "virtual" views of the official forward are not materialised: they
are bit-identical to the input views at every layer (spec 5.2), so the V input views are run once and decoded.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mapping.gaussians.arch import TTT_SCANS, TttLrmArch
from mapping.gaussians.fast_weights import NS_DTYPES, column_norms, glu_apply, glu_update

#: learning-rate offset: softplus(beta) = 0.01
LR_BETA = math.log(math.expm1(0.01))
#: names of the output dict of :meth:`TttLrm.predict`
OUTPUT_KEYS = ("means", "sh", "log_scales", "quats", "opacity_logits")


class SelfAttention(nn.Module):
    """Non-causal attention within each view, RMS-normalised q and k per head, no positional encoding."""

    def __init__(self, d: int, head_dim: int):
        super().__init__()
        self.head_dim = head_dim
        self.to_qkv = nn.Linear(d, 3 * d, bias=False)
        self.c_proj = nn.Linear(d, d, bias=False)
        self.q_norm = nn.RMSNorm(head_dim, eps=None)  # eps=None: float32 machine epsilon
        self.k_norm = nn.RMSNorm(head_dim, eps=None)

    def forward(self, z: torch.Tensor, n_views: int) -> torch.Tensor:
        """``z [T, d]`` with T = n_views * n tokens, views contiguous; returns ``[T, d]``."""
        t, d = z.shape
        q, k, v = self.to_qkv(z).split(d, dim=-1)
        shape = (n_views, t // n_views, d // self.head_dim, self.head_dim)
        q = self.q_norm(q.reshape(shape)).transpose(1, 2)
        k = self.k_norm(k.reshape(shape)).transpose(1, 2)
        v = v.reshape(shape).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)  # [V, heads, n, head_dim]
        return self.c_proj(out.transpose(1, 2).reshape(t, d))


class FastWeightGluMLP(nn.Module):
    """Test-time-training layer: a SwiGLU MLP whose weights are updated from the tokens, then applied to them."""

    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.w0 = nn.Parameter(torch.empty(1, d, hidden))
        self.w1 = nn.Parameter(torch.empty(1, hidden, d))
        self.w2 = nn.Parameter(torch.empty(1, d, hidden))
        self.to_qkv = nn.Linear(d, 3 * d, bias=False)
        self.c_proj = nn.Linear(d, d, bias=False)
        self.lr_fc = nn.Linear(d, 3, bias=True)
        self.o_norm = nn.RMSNorm(d, eps=1e-5)

    def forward(self, z: torch.Tensor, chunk: int, ns_steps: int, ns_dtype: torch.dtype,
                record: dict[str, list] | None = None) -> torch.Tensor:
        """``z [T, d]``; the fast weights are updated on consecutive chunks of ``chunk`` tokens, then the final
        weights are applied to every token. ``record`` (optional) collects the learning rates and weights."""
        t, d = z.shape
        q, k, v = F.silu(self.to_qkv(z)).split(d, dim=-1)
        q = q / (q.norm(dim=-1, keepdim=True) + 1e-5)
        k = k / (k.norm(dim=-1, keepdim=True) + 1e-5)
        with torch.autocast(device_type=z.device.type, enabled=False):
            lr = F.softplus(F.linear(z.float(), self.lr_fc.weight.float(), self.lr_fc.bias.float()) + LR_BETA)
        weights = (self.w0[0].float(), self.w1[0].float(), self.w2[0].float())
        ref = tuple(column_norms(w) for w in weights)
        kf, vf = k.float(), v.float()
        chunks = []
        for start in range(0, t, chunk):
            stop = start + chunk
            weights = glu_update(weights, ref, kf[start:stop], vf[start:stop], lr[start:stop], ns_steps, ns_dtype)
            if record is not None:
                chunks.append(tuple(w.detach().clone() for w in weights))
        if record is not None:
            record.setdefault("lr", []).append(lr.detach())
            record.setdefault("fast_weights", []).append(weights)
            record.setdefault("fast_weight_chunks", []).append(chunks)
        w0, w1, w2 = (w.to(q.dtype) for w in weights)
        return self.c_proj(self.o_norm(glu_apply(q, w0, w1, w2)))


class MLP(nn.Module):
    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.c_fc = nn.Linear(d, hidden, bias=False)
        self.c_proj = nn.Linear(hidden, d, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(z)))


class PreNorm(nn.Module):
    """``ln`` (LayerNorm without bias) followed by the sub-layer ``f``; the residual is added by the block."""

    def __init__(self, d: int, f: nn.Module):
        super().__init__()
        self.ln = nn.LayerNorm(d, bias=False)
        self.f = f


class Block(nn.Module):
    def __init__(self, arch: TttLrmArch):
        super().__init__()
        d = arch.d
        self.module_list = nn.ModuleList([PreNorm(d, SelfAttention(d, arch.attn_head_dim)),
                                          PreNorm(d, FastWeightGluMLP(d, arch.ttt_hidden)),
                                          PreNorm(d, MLP(d, arch.mlp_hidden))])

    def forward(self, x: torch.Tensor, n_views: int, chunk: int, ns_steps: int, ns_dtype: torch.dtype,
                record: dict[str, list] | None = None) -> torch.Tensor:
        attn, ttt, mlp = self.module_list
        x = x + attn.f(attn.ln(x), n_views)
        x = x + ttt.f(ttt.ln(x), chunk, ns_steps, ns_dtype, record)
        return x + mlp.f(mlp.ln(x))


def ray_input(images: torch.Tensor, c2w: torch.Tensor, fxfycxcy: torch.Tensor) -> torch.Tensor:
    """The 12-channel per-pixel input ``[o, d, o x d, 2 rgb - 1]`` of ``V`` views, shape ``[V, H, W, 12]``.

    Args:
        images: ``[V, 3, H, W]`` RGB in [0, 1].
        c2w: ``[V, 4, 4]`` OpenCV camera-to-world (normalised frame).
        fxfycxcy: ``[V, 4]`` pinhole intrinsics in pixels of the H x W images (pixel centres at +0.5).
    """
    n_views, _, height, width = images.shape
    dtype, device = c2w.dtype, c2w.device
    rows = torch.arange(height, dtype=dtype, device=device) + 0.5
    cols = torch.arange(width, dtype=dtype, device=device) + 0.5
    fx, fy, cx, cy = (fxfycxcy[:, i].reshape(n_views, 1, 1) for i in range(4))
    x = ((cols.reshape(1, 1, width) - cx) / fx).expand(n_views, height, width)
    y = ((rows.reshape(1, height, 1) - cy) / fy).expand(n_views, height, width)
    cam = torch.stack([x, y, torch.ones_like(x)], dim=-1)  # [V, H, W, 3]
    dirs = torch.einsum("vij,vhwj->vhwi", c2w[:, :3, :3], cam)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    origin = c2w[:, :3, 3].reshape(n_views, 1, 1, 3).expand_as(dirs)
    moment = torch.cross(origin, dirs, dim=-1)
    rgb = images.permute(0, 2, 3, 1).to(dtype) * 2.0 - 1.0
    return torch.cat([origin, dirs, moment, rgb], dim=-1)


def patchify(pixels: torch.Tensor, p: int) -> torch.Tensor:
    """``[V, H, W, C]`` -> ``[V * Hp * Wp, p * p, C]``: tokens row-major over patches, in-patch (ph, pw) order."""
    n_views, height, width, ch = pixels.shape
    x = pixels.reshape(n_views, height // p, p, width // p, p, ch).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, p * p, ch)


class TttLrm(nn.Module):
    """tttLRM. Build on the meta device and load with ``load_state_dict(..., assign=True)`` to skip the init.

    Attributes:
        arch: the architecture.
        ns_dtype: dtype of the Newton-Schulz step ('bf16' as the official code, 'fp32' for tight parity).
        autocast: on CUDA, run the dense layers under bf16 autocast (as the official inference); off = float32.
    """

    def __init__(self, arch: TttLrmArch, ns_dtype: str = "bf16", autocast: bool = False):
        super().__init__()
        if ns_dtype not in NS_DTYPES:
            raise ValueError(f"ns_dtype: expected one of {', '.join(NS_DTYPES)}, got {ns_dtype!r}")
        arch.validate()
        self.arch = arch
        self.ns_dtype = ns_dtype
        self.autocast = autocast
        d, p = arch.d, arch.patch_size
        self.tokenizer = nn.Sequential(nn.Identity(), nn.Linear(arch.in_channels * p * p, d, bias=False))
        self.input_layernorm = nn.LayerNorm(d, bias=False)
        self.blocks = nn.ModuleList([Block(arch) for _ in range(arch.n_layer)])
        self.decoder = nn.Sequential(nn.LayerNorm(d, bias=False), nn.Linear(d, arch.channels * p * p, bias=False))

    @property
    def device(self) -> torch.device:
        return self.decoder[1].weight.device

    @torch.no_grad()
    def predict(self, images: torch.Tensor, c2w: torch.Tensor, fxfycxcy: torch.Tensor, mode: str | None = None,
                return_internals: bool = False) -> dict[str, Any]:
        """One Gaussian per input pixel, in patch-major order, before any pruning.

        Args:
            images: float32 ``[1, V, 3, H, W]`` RGB in [0, 1]; H, W multiples of the patch size.
            c2w: float32 ``[1, V, 4, 4]`` normalised OpenCV camera-to-world poses (:func:`normalize_poses`).
            fxfycxcy: float32 ``[1, V, 4]`` intrinsics in pixels of the H x W images.
            mode: 'full' or 'ar' (V a multiple of ``miniupdate_views``); None = the config's ``ttt_scan``.
            return_internals: also return ``fast_weights`` (per layer ``(w0, w1, w2)``), ``fast_weight_chunks``,
                ``lr`` and ``tokens`` (residual stream after the input norm and after every block).

        Returns:
            float32 tensors on the model's device, N = V*H*W: ``means [1,N,3]`` (normalised frame),
            ``sh [1,N,n_sh,3]``, ``log_scales [1,N,3]``, ``quats [1,N,4]`` (w, x, y, z; raw),
            ``opacity_logits [1,N,1]``.
        """
        arch, p = self.arch, self.arch.patch_size
        images, c2w, fxfycxcy = (torch.as_tensor(x) for x in (images, c2w, fxfycxcy))
        mode = arch.ttt_scan if mode is None else mode
        if mode not in TTT_SCANS:
            raise ValueError(f"mode: expected one of {', '.join(TTT_SCANS)}, got {mode!r}")
        if images.ndim != 5 or images.shape[0] != 1 or images.shape[2] != 3:
            raise ValueError(f"images: expected [1, V, 3, H, W], got {list(images.shape)}")
        _, n_views, _, height, width = images.shape
        if height % p or width % p:
            raise ValueError(f"images: H x W = {height} x {width} must be multiples of the patch size {p}")
        if tuple(c2w.shape) != (1, n_views, 4, 4) or tuple(fxfycxcy.shape) != (1, n_views, 4):
            raise ValueError(f"c2w / fxfycxcy: expected [1, {n_views}, 4, 4] and [1, {n_views}, 4], "
                             f"got {list(c2w.shape)} and {list(fxfycxcy.shape)}")
        n_tok = (height // p) * (width // p)
        if mode == "ar":
            if n_views % arch.miniupdate_views:
                raise ValueError(f"mode 'ar': the number of views ({n_views}) must be a multiple of "
                                 f"{arch.miniupdate_views}")
            chunk = arch.miniupdate_views * n_tok
        else:
            chunk = n_views * n_tok
        dev = self.device
        images = images[0].to(dev, torch.float32)
        c2w = c2w[0].to(dev, torch.float32)
        fxfycxcy = fxfycxcy[0].to(dev, torch.float32)

        rays = ray_input(images, c2w, fxfycxcy)  # [V, H, W, 12]
        ns_dtype = NS_DTYPES[self.ns_dtype]
        record: dict[str, list] | None = {} if return_internals else None
        use_amp = self.autocast and dev.type == "cuda"
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=use_amp):
            tokens = patchify(rays, p).reshape(n_views * n_tok, -1)
            x = self.input_layernorm(self.tokenizer(tokens))
            stream = [x.float()] if return_internals else None
            for block in self.blocks:
                x = block(x, n_views, chunk, arch.muon_update_steps, ns_dtype, record)
                if stream is not None:
                    stream.append(x.float())
            raw = self.decoder(x)
        del x
        raw = raw.float().reshape(n_views * n_tok * p * p, arch.channels)
        out = self._activate(raw, patchify(rays[..., 0:3], p).reshape(-1, 3), patchify(rays[..., 3:6], p).reshape(-1, 3))
        if record is not None:
            out["fast_weights"] = record["fast_weights"]
            out["fast_weight_chunks"] = record["fast_weight_chunks"]
            out["lr"] = torch.stack(record["lr"])
            out["tokens"] = torch.stack(stream)
        return out

    def _activate(self, raw: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw decoder values ``[N, C]`` -> the output dict (batch axis added)."""
        arch = self.arch
        n_sh = arch.n_sh
        dist = arch.max_dist * torch.sigmoid(raw[:, 0:3].mean(dim=-1, keepdim=True))
        i = 3 + 3 * n_sh
        out = {
            "means": origins + dist * dirs,
            "sh": raw[:, 3:i].reshape(-1, n_sh, 3),
            "log_scales": torch.clamp(raw[:, i:i + 3] - 2.3, max=arch.max_scaling),
            "quats": raw[:, i + 3:i + 7],
            "opacity_logits": raw[:, i + 7:i + 8] - 2.0,
        }
        return {k: v.unsqueeze(0).contiguous() for k, v in out.items()}
