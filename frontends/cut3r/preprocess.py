"""The official CUT3R image preprocessing for one SLAM frame.

Steps, for an ``H0 x W0`` uint8 RGB image and working size ``size``:

1. Resize. ``size == 224``: the *short* side becomes 224 (long side ``L = round(224 * max(W0/H0, H0/W0))``);
   otherwise the *long* side becomes ``size`` (512 for the 512 model). New size
   ``(round(W0*L/S), round(H0*L/S))`` with ``S`` the long side. Resampling: LANCZOS when shrinking
   (``S > L``), BICUBIC otherwise -- done with Pillow exactly as the official code does.
2. Centre crop. ``size == 224``: the centred square of side ``2*min(W//2, H//2)``. Otherwise width and
   height are floored to multiples of 16 around ``(W//2, H//2)``, and a square image is cropped to 4:3.
3. ``x = (u8/255 - 0.5)/0.5`` in float32, shape ``[1, 3, h, w]``.

``resample="torch"`` computes Pillow's filters with torch on the network's device
(:func:`kernels.resample.resize_uint8`): the uint8 frame is uploaded once (from pinned memory on CUDA) and
resized, cropped and normalised there. The result equals Pillow's bit for bit for landscape and square
frames; for portrait frames Pillow may run its vertical pass first, and pixels then differ by the
rounding of the intermediate image (at most 2 grey levels on the test images). ``resample="auto"`` (the
frontend's default) uses ``torch`` on CUDA and ``pil`` on the CPU, where Pillow's banded filter is faster
than dense matrix products.

Deviation: the official 224 crop is ``2*min(W//2, H//2)`` which could in principle be off by a rounding
pixel from 224 and then crash the network (sizes must be multiples of 16); here such a crop is floored to
a multiple of 16. For every input size tried it is exactly 224x224, as in the official code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kernels.resample import resize_uint8
from slam.camera import ResizeCrop
from slam.errors import ConfigError

PATCH = 16
RESAMPLE_METHODS = ("pil", "torch", "auto")


@dataclass
class PreprocessedImage:
    """A frame prepared for the network.

    Attributes:
        tensor: ``[1, 3, h, w]`` float32 in [-1, 1] (channel order RGB), on the requested device.
        image: ``(h, w, 3)`` uint8 working-size image the tensor was computed from (numpy, or a tensor
            on the device for ``resample='torch'``; read it through :attr:`rgb`).
        transform: resize + crop from the original image to the working size (maps intrinsics).
    """

    tensor: torch.Tensor
    image: np.ndarray | torch.Tensor
    transform: ResizeCrop

    @property
    def rgb(self) -> np.ndarray:
        """The working-size image as ``(h, w, 3)`` uint8 numpy (copied from the device on first use)."""
        if isinstance(self.image, torch.Tensor):
            self.image = self.image.cpu().numpy()
        return self.image

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


def upload_uint8(rgb: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """``(H, W, 3)`` uint8 numpy -> ``[3, H, W]`` uint8 tensor on ``device`` (via pinned memory on CUDA, so the
    copy is asynchronous)."""
    host = torch.from_numpy(np.ascontiguousarray(rgb))
    if torch.device(device).type == "cuda":
        host = host.pin_memory()
    return host.to(device, non_blocking=True).permute(2, 0, 1)


def _preprocess_on_device(rgb: np.ndarray, geometry: ResizeCrop, device) -> PreprocessedImage:
    image = upload_uint8(rgb, device)
    if geometry.resized_size != geometry.src_size:
        shrinking = max(geometry.src_size) > max(geometry.resized_size)
        image = resize_uint8(image, geometry.resized_size, "lanczos" if shrinking else "bicubic")
    top, left = geometry.crop_top, geometry.crop_left
    h, w = geometry.out_size
    image = image[:, top:top + h, left:left + w]
    tensor = image.float().div(255).sub(0.5).div(0.5)[None].contiguous()
    return PreprocessedImage(tensor=tensor, image=image.permute(1, 2, 0), transform=geometry)


def normalize_uint8(rgb: np.ndarray) -> torch.Tensor:
    """``(h, w, 3)`` uint8 -> ``[1, 3, h, w]`` float32 ``(u8/255 - 0.5)/0.5``, bit-identical to torchvision's
    ``ToTensor`` + ``Normalize(0.5, 0.5)``."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div(255)
    return x.sub(0.5).div(0.5)[None].contiguous()


def preprocess_frame(rgb: np.ndarray, size: int = 512, resample: str = "pil",
                     device: torch.device | str = "cpu") -> PreprocessedImage:
    """Resize, crop and normalise one ``(H0, W0, 3)`` uint8 RGB frame like the official ``load_images``.

    Args:
        rgb: the frame (uint8 RGB; a float image in [0, 1] or a grey ``(H0, W0)`` image is rejected).
        size: 224 (short side -> 224, square crop) or e.g. 512 (long side -> 512, crop to multiples of 16).
        resample: ``'pil'`` (Pillow on the CPU), ``'torch'`` (Pillow's filters on ``device``) or ``'auto'``
            (``torch`` when ``device`` is CUDA, else ``pil``); see the module docs.
        device: where the returned tensor lives (and where ``torch`` resampling runs).
    """
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        desc = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {desc}")
    if resample not in RESAMPLE_METHODS:
        raise ConfigError(f"unknown resample method {resample!r} (use one of {', '.join(RESAMPLE_METHODS)})")
    geometry = working_geometry(rgb.shape[:2], size)
    if resample == "auto":
        resample = "torch" if torch.device(device).type == "cuda" else "pil"
    if resample == "torch":
        return _preprocess_on_device(rgb, geometry, device)
    if geometry.resized_size != geometry.src_size:
        shrinking = max(geometry.src_size) > max(geometry.resized_size)
        resized = _resize_pil(rgb, geometry.resized_size, shrinking)
    else:
        resized = rgb
    top, left = geometry.crop_top, geometry.crop_left
    h, w = geometry.out_size
    cropped = np.array(resized[top:top + h, left:left + w], order="C")
    tensor = normalize_uint8(cropped)
    if torch.device(device).type == "cuda":
        tensor = tensor.pin_memory().to(device, non_blocking=True)
    return PreprocessedImage(tensor=tensor, image=cropped, transform=geometry)
