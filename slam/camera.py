"""Pinhole intrinsics under resizing and cropping, and focal estimation from a pointmap.

Pixel convention (OpenCV): pixel ``(u, v)`` has its centre at integer coordinates, the image spans
``[-0.5, W-0.5] x [-0.5, H-0.5]``. Resizing an image from width ``w0`` to ``w1`` maps a continuous
coordinate ``u0`` to ``u1 = (u0 + 0.5) * w1/w0 - 0.5`` (this is what PIL, OpenCV ``INTER_AREA``/``LINEAR``
and ``torch.nn.functional.interpolate(align_corners=False)`` do), so ``fx`` scales by ``w1/w0`` and
``cx`` follows the same affine map. Cropping at ``(top, left)`` subtracts the offset from the principal
point. Every ``K`` in this module is a 3x3 float64 array that belongs to the size stated next to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def scale_intrinsics(K: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """``K`` for an image resized from ``from_size`` to ``to_size`` (both ``(height, width)`` in pixels)."""
    sy = to_size[0] / from_size[0]
    sx = to_size[1] / from_size[1]
    K = np.asarray(K, dtype=np.float64)
    out = K.copy()
    out[0, 0], out[0, 1], out[0, 2] = K[0, 0] * sx, K[0, 1] * sx, (K[0, 2] + 0.5) * sx - 0.5
    out[1, 1], out[1, 2] = K[1, 1] * sy, (K[1, 2] + 0.5) * sy - 0.5
    return out


def crop_intrinsics(K: np.ndarray, top: int, left: int) -> np.ndarray:
    """``K`` for the crop whose top-left pixel is ``(top, left)`` of the image ``K`` belongs to."""
    out = np.asarray(K, dtype=np.float64).copy()
    out[0, 2] -= left
    out[1, 2] -= top
    return out


@dataclass(frozen=True)
class ResizeCrop:
    """A resize of the whole image followed by a crop, e.g. a frontend's preprocessing.

    Attributes:
        src_size: ``(h0, w0)`` of the original image.
        resized_size: ``(h1, w1)`` after resizing.
        crop_top, crop_left: top-left pixel of the crop in the resized image.
        out_size: ``(h, w)`` of the crop (the working size).
    """

    src_size: tuple[int, int]
    resized_size: tuple[int, int]
    crop_top: int
    crop_left: int
    out_size: tuple[int, int]

    def K_to_output(self, K: np.ndarray) -> np.ndarray:
        """Map intrinsics of the original image to the output (working) image."""
        return crop_intrinsics(scale_intrinsics(K, self.src_size, self.resized_size), self.crop_top, self.crop_left)

    def K_to_source(self, K: np.ndarray) -> np.ndarray:
        """Map intrinsics of the output (working) image back to the original image (exact inverse)."""
        uncropped = crop_intrinsics(K, -self.crop_top, -self.crop_left)
        return scale_intrinsics(uncropped, self.resized_size, self.src_size)

    def pixels_to_source(self, uv: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` pixel coordinates ``(u, v)`` of the output image to the original image."""
        uv = np.asarray(uv, dtype=np.float64)
        scale = np.array([self.src_size[1] / self.resized_size[1], self.src_size[0] / self.resized_size[0]])
        shifted = uv + np.array([self.crop_left, self.crop_top])
        return (shifted + 0.5) * scale - 0.5


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
