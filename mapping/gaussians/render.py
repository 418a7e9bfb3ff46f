"""Rendering 3D Gaussians: a small pure-torch rasteriser (tests, CPU) and gsplat on CUDA when installed.

Conventions as the official renderer (spec section 6.2): ``sigmoid(opacity_logits)``, ``exp(log_scales)``,
L2-normalised quaternions (w, x, y, z), colour ``max(SH(d) + 0.5, 0)`` with d the unit direction from the camera
centre to the Gaussian, EWA splatting with ``eps2d = 0.3`` added to the 2-D covariance, front-to-back alpha
compositing over a white background. Pixel (r, c) samples the image point (c + 0.5, r + 0.5), so ``K`` is in the
corner convention of the tttLRM intrinsics (``cx = W/2`` is the image centre).
"""

from __future__ import annotations

import torch

from mapping.gaussians.sh import eval_sh

EPS2D = 0.3
ALPHA_MAX = 0.99
ALPHA_MIN = 1.0 / 255.0


def quat_to_rotation(q: torch.Tensor) -> torch.Tensor:
    """``[N,4]`` (w, x, y, z), any norm -> ``[N,3,3]`` rotation matrices."""
    w, x, y, z = torch.nn.functional.normalize(q, dim=-1).unbind(-1)
    return torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], dim=-1).reshape(-1, 3, 3)


def render_torch(g: dict[str, torch.Tensor], c2w: torch.Tensor, K: torch.Tensor, height: int, width: int,
                 near: float = 0.1, background: float = 1.0, pixel_chunk: int = 4096) -> torch.Tensor:
    """Render Gaussians ``g`` (``means [N,3]``, ``sh [N,K,3]``, ``log_scales [N,3]``, ``quats [N,4]``,
    ``opacity_logits [N]`` or ``[N,1]``; world frame) from the OpenCV camera ``c2w [4,4]`` with ``K [3,3]``.

    Returns the ``[H, W, 3]`` float image. Cost ~ H*W*N; meant for small images and maps.
    """
    dtype = torch.float64
    means = g["means"].reshape(-1, 3).to(dtype)
    w2c = torch.linalg.inv(c2w.to(dtype))
    cam = means @ w2c[:3, :3].T + w2c[:3, 3]
    keep = cam[:, 2] > near
    cam, means = cam[keep], means[keep]
    sh = g["sh"].reshape(-1, *g["sh"].shape[-2:])[keep].to(dtype)
    opacity = torch.sigmoid(g["opacity_logits"].reshape(-1)[keep].to(dtype))
    scales = torch.exp(g["log_scales"].reshape(-1, 3)[keep].to(dtype))
    rot = quat_to_rotation(g["quats"].reshape(-1, 4)[keep].to(dtype))
    cov3 = rot @ torch.diag_embed(scales ** 2) @ rot.transpose(1, 2)
    cov_cam = w2c[:3, :3] @ cov3 @ w2c[:3, :3].T
    fx, fy, cx, cy = K[0, 0].item(), K[1, 1].item(), K[0, 2].item(), K[1, 2].item()
    x, y, z = cam.unbind(-1)
    jac = torch.zeros(cam.shape[0], 2, 3, dtype=dtype)
    jac[:, 0, 0], jac[:, 0, 2] = fx / z, -fx * x / z ** 2
    jac[:, 1, 1], jac[:, 1, 2] = fy / z, -fy * y / z ** 2
    cov2 = jac @ cov_cam @ jac.transpose(1, 2) + EPS2D * torch.eye(2, dtype=dtype)
    conic = torch.linalg.inv(cov2)
    centre = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)
    dirs = torch.nn.functional.normalize(means - c2w[:3, 3].to(dtype), dim=-1)
    colour = torch.clamp(eval_sh(sh, dirs) + 0.5, min=0.0)
    order = torch.argsort(z, stable=True)  # front to back
    centre, conic, opacity, colour = centre[order], conic[order], opacity[order], colour[order]

    rows, cols = torch.meshgrid(torch.arange(height, dtype=dtype) + 0.5, torch.arange(width, dtype=dtype) + 0.5,
                                indexing="ij")
    pix = torch.stack([cols.reshape(-1), rows.reshape(-1)], dim=-1)
    out = torch.empty(pix.shape[0], 3, dtype=dtype)
    for start in range(0, pix.shape[0], pixel_chunk):
        d = pix[start:start + pixel_chunk, None, :] - centre[None]  # [P, N, 2]
        power = -0.5 * (conic[None, :, 0, 0] * d[..., 0] ** 2 + conic[None, :, 1, 1] * d[..., 1] ** 2
                        + 2 * conic[None, :, 0, 1] * d[..., 0] * d[..., 1])
        alpha = torch.clamp(opacity[None] * torch.exp(power), max=ALPHA_MAX)
        alpha = torch.where(alpha >= ALPHA_MIN, alpha, torch.zeros_like(alpha))
        trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1]], dim=1), dim=1)
        weight = alpha * trans
        rest = trans[:, -1] * (1 - alpha[:, -1]) if alpha.shape[1] else torch.ones(alpha.shape[0], dtype=dtype)
        out[start:start + pixel_chunk] = weight @ colour + rest[:, None] * background
    return out.reshape(height, width, 3).to(torch.float32)


def render(g: dict[str, torch.Tensor], c2w: torch.Tensor, K: torch.Tensor, height: int, width: int,
           near: float = 0.1, background: float = 1.0) -> torch.Tensor:
    """Render with gsplat on CUDA when it is installed, else with :func:`render_torch`; ``[H, W, 3]``."""
    if c2w.device.type == "cuda":
        try:
            from gsplat import rasterization
        except ImportError:
            rasterization = None
        if rasterization is not None:
            n_sh = g["sh"].shape[-2]
            colors, _, _ = rasterization(
                means=g["means"].reshape(-1, 3).float(), quats=torch.nn.functional.normalize(g["quats"].reshape(-1, 4).float(), dim=-1),
                scales=torch.exp(g["log_scales"].reshape(-1, 3).float()),
                opacities=torch.sigmoid(g["opacity_logits"].reshape(-1).float()),
                colors=g["sh"].reshape(-1, n_sh, 3).float(), viewmats=torch.linalg.inv(c2w.float())[None],
                Ks=K.float()[None], width=width, height=height, sh_degree=int(round(n_sh ** 0.5)) - 1,
                near_plane=near, far_plane=1e10, eps2d=EPS2D,
                backgrounds=torch.full((1, 3), background, device=c2w.device), rasterize_mode="classic")
            return colors[0]
    return render_torch({k: v.cpu() for k, v in g.items()}, c2w.cpu(), K.cpu(), height, width, near, background)
