"""Focal length of a CUT3R pointmap: the single focal that best explains it, as DUSt3R/CUT3R estimate it.

The principal point is fixed at ``(W//2, H//2)`` (the DUSt3R/CUT3R convention); torch is imported when
the estimate runs, not on import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def intrinsics_from_focal(focal: float, size: tuple[int, int]) -> np.ndarray:
    """K with one focal for both axes and the principal point at ``(W//2, H//2)`` (DUSt3R/CUT3R convention)."""
    h, w = size
    return np.array([[focal, 0.0, w // 2], [0.0, focal, h // 2], [0.0, 0.0, 1.0]], dtype=np.float64)


def estimate_focal_weiszfeld(points: torch.Tensor | np.ndarray, iterations: int = 10) -> float:
    """Single focal (pixels) that best explains a camera-frame pointmap, as DUSt3R/CUT3R estimate it.

    With the principal point at ``(W//2, H//2)`` and ``r = (X/Z, Y/Z)`` per pixel (NaN/inf -> 0), it
    minimises ``sum_pixels ||(u, v) - pp - f * r||`` by iteratively re-weighted least squares (Weiszfeld),
    starting from the least-squares solution, and clips the result at 0. Computed in float32 like the
    official code.

    Args:
        points: ``(H, W, 3)`` pointmap in the camera frame (OpenCV axes, z = depth).
        iterations: re-weighting steps (official: 10).
    """
    import torch
    pts = torch.as_tensor(points).detach().to(torch.float32).cpu()
    if pts.ndim != 3 or pts.shape[-1] != 3:
        raise ValueError(f"expected an (H, W, 3) pointmap, got shape {tuple(pts.shape)}")
    h, w = pts.shape[:2]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    pixels = torch.stack([xs - (w // 2), ys - (h // 2)], dim=-1).reshape(-1, 2)
    ratio = (pts[..., :2] / pts[..., 2:3]).nan_to_num(nan=0.0, posinf=0.0, neginf=0.0).reshape(-1, 2)
    dot_rp = (ratio * pixels).sum(-1)
    dot_rr = ratio.square().sum(-1)
    focal = dot_rp.mean() / dot_rr.mean()
    for _ in range(iterations):
        weights = (pixels - focal * ratio).norm(dim=-1).clip(min=1e-8).reciprocal()
        focal = (weights * dot_rp).mean() / (weights * dot_rr).mean()
    return float(focal.nan_to_num(nan=0.0).clip(min=0.0))
