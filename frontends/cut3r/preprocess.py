"""The official CUT3R image preprocessing for one SLAM frame (spec §3.1, ``load_images``).

Steps, for an ``H0 x W0`` uint8 RGB image and working size ``size``:

1. Resize. ``size == 224``: the *short* side becomes 224 (long side ``L = round(224 * max(W0/H0, H0/W0))``);
   otherwise the *long* side becomes ``size`` (512 for the 512 model). New size
   ``(round(W0*L/S), round(H0*L/S))`` with ``S`` the long side. Resampling: LANCZOS when shrinking
   (``S > L``), BICUBIC otherwise -- done with Pillow exactly as the official code does.
2. Centre crop. ``size == 224``: the centred square of side ``2*min(W//2, H//2)``. Otherwise width and
   height are floored to multiples of 16 around ``(W//2, H//2)``, and a square image is cropped to 4:3.
3. ``x = (u8/255 - 0.5)/0.5`` in float32, shape ``[1, 3, h, w]``.

``resample="torch"`` replaces Pillow by ``torch.nn.functional.interpolate(mode="bicubic",
antialias=True)`` (for tensors already on a GPU, or without Pillow). It is *not* the official filter:
bicubic with antialiasing differs from PIL's LANCZOS by a few grey levels at edges; the geometry
(size, crop, intrinsics) is identical.

Deviation: the official 224 crop is ``2*min(W//2, H//2)`` which could in principle be off by a rounding
pixel from 224 and then crash the network (sizes must be multiples of 16); here such a crop is floored to
a multiple of 16. For every input size tried it is exactly 224x224, as in the official code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from slam.camera import ResizeCrop
from slam.errors import ConfigError

PATCH = 16


@dataclass
class PreprocessedImage:
    """A frame prepared for the network.

    Attributes:
        tensor: ``[1, 3, h, w]`` float32 in [-1, 1] (channel order RGB).
        rgb: ``(h, w, 3)`` uint8 working-size image (what the tensor was computed from).
        transform: resize + crop from the original image to the working size (maps intrinsics).
    """

    tensor: torch.Tensor
    rgb: np.ndarray
    transform: ResizeCrop

    @property
    def size(self) -> tuple[int, int]:
        """Working size ``(h, w)``."""
        return self.transform.out_size


def working_geometry(src_size: tuple[int, int], size: int) -> ResizeCrop:
    """The official resize and crop for an image of ``src_size = (H0, W0)`` at working ``size`` (224 or 512...)."""
    h0, w0 = src_size
    if h0 <= 0 or w0 <= 0:
        raise ValueError(f"empty image of size {src_size}")
    if size < PATCH:
        raise ConfigError(f"working size must be at least {PATCH}, got {size}")
    long_side = round(size * max(w0 / h0, h0 / w0)) if size == 224 else size
    s = max(w0, h0)
    w1, h1 = int(round(w0 * long_side / s)), int(round(h0 * long_side / s))
    cx, cy = w1 // 2, h1 // 2
    if size == 224:
        half = min(cx, cy)
        side = (2 * half) // PATCH * PATCH
        left, top, out_w, out_h = cx - side // 2, cy - side // 2, side, side
    else:
        halfw = ((2 * cx) // PATCH) * 8
        halfh = ((2 * cy) // PATCH) * 8
        if w1 == h1:
            halfh = 3 * halfw // 4
        left, top, out_w, out_h = cx - halfw, cy - halfh, 2 * halfw, 2 * halfh
    if out_w < PATCH or out_h < PATCH:
        raise ValueError(f"image of size {w0}x{h0} is too small for working size {size}")
    return ResizeCrop(src_size=(h0, w0), resized_size=(h1, w1), crop_top=top, crop_left=left,
                      out_size=(out_h, out_w))


def _resize_pil(rgb: np.ndarray, size_hw: tuple[int, int], shrinking: bool) -> np.ndarray:
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(rgb))
    resample = Image.Resampling.LANCZOS if shrinking else Image.Resampling.BICUBIC
    return np.array(image.resize((size_hw[1], size_hw[0]), resample))


def _resize_torch(rgb: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
    y = torch.nn.functional.interpolate(x, size=size_hw, mode="bicubic", antialias=True, align_corners=False)
    return y.round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()


def normalize_uint8(rgb: np.ndarray) -> torch.Tensor:
    """``(h, w, 3)`` uint8 -> ``[1, 3, h, w]`` float32 ``(u8/255 - 0.5)/0.5``, bit-identical to torchvision's
    ``ToTensor`` + ``Normalize(0.5, 0.5)``."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div(255)
    return x.sub(0.5).div(0.5)[None].contiguous()


def preprocess_frame(rgb: np.ndarray, size: int = 512, resample: str = "pil") -> PreprocessedImage:
    """Resize, crop and normalise one ``(H0, W0, 3)`` uint8 RGB frame like the official ``load_images``.

    Args:
        rgb: the frame (uint8 RGB; a float image in [0, 1] or a grey ``(H0, W0)`` image is rejected).
        size: 224 (short side -> 224, square crop) or e.g. 512 (long side -> 512, crop to multiples of 16).
        resample: ``'pil'`` (official filters) or ``'torch'`` (antialiased bicubic, see module docs).
    """
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        desc = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {desc}")
    if resample not in ("pil", "torch"):
        raise ConfigError(f"unknown resample method {resample!r} (use 'pil' or 'torch')")
    geometry = working_geometry(rgb.shape[:2], size)
    if geometry.resized_size != geometry.src_size:
        shrinking = max(geometry.src_size) > max(geometry.resized_size)
        resized = (_resize_pil(rgb, geometry.resized_size, shrinking) if resample == "pil"
                   else _resize_torch(rgb, geometry.resized_size))
    else:
        resized = rgb
    top, left = geometry.crop_top, geometry.crop_left
    h, w = geometry.out_size
    cropped = np.array(resized[top:top + h, left:left + w], order="C")
    return PreprocessedImage(tensor=normalize_uint8(cropped), rgb=cropped, transform=geometry)
