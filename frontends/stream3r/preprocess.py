"""The official STream3R demo preprocessing for one frame (``load_and_preprocess_images``, mode ``crop``).

For an ``H0 x W0`` uint8 RGB image and target width ``width`` (official 518, a multiple of 14):

1. resize with Pillow bicubic to ``width x h1``, ``h1 = round(H0 * width / W0 / 14) * 14`` (Python ``round``);
2. if ``h1 > width``, keep the centre ``width`` rows (start ``(h1 - width) // 2``): portrait images become square;
3. ``x = u8 / 255`` float32 ``[1, 3, h, w]`` in [0, 1] (the network normalises internally).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from slam.camera import ResizeCrop

PATCH = 14
OFFICIAL_WIDTH = 518


@dataclass
class PreprocessedImage:
    """A frame prepared for the network.

    Attributes:
        tensor: ``[1, 3, h, w]`` float32 in [0, 1].
        rgb: ``(h, w, 3)`` uint8 working-size image.
        transform: resize + crop from the original image to the working size (maps intrinsics).
    """

    tensor: torch.Tensor
    rgb: np.ndarray
    transform: ResizeCrop

    @property
    def size(self) -> tuple[int, int]:
        """Working size ``(h, w)``."""
        return self.transform.out_size


def working_geometry(src_size: tuple[int, int], width: int = OFFICIAL_WIDTH) -> ResizeCrop:
    """Resize + crop of an image of ``src_size = (H0, W0)`` to the working size for target ``width``."""
    h0, w0 = src_size
    if h0 <= 0 or w0 <= 0:
        raise ValueError(f"empty image of size {src_size}")
    if width < PATCH or width % PATCH:
        raise ValueError(f"working width must be a positive multiple of {PATCH}, got {width}")
    h1 = round(h0 * (width / w0) / PATCH) * PATCH
    if h1 < PATCH:
        raise ValueError(f"image of size {w0}x{h0} is too flat for working width {width}")
    top = (h1 - width) // 2 if h1 > width else 0
    return ResizeCrop(src_size=(h0, w0), resized_size=(h1, width), crop_top=top, crop_left=0,
                      out_size=(min(h1, width), width))


def preprocess_frame(rgb: np.ndarray, width: int = OFFICIAL_WIDTH) -> PreprocessedImage:
    """Resize (Pillow bicubic), centre-crop and scale one ``(H0, W0, 3)`` uint8 RGB frame to [0, 1]."""
    from PIL import Image

    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        desc = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {desc}")
    geometry = working_geometry(rgb.shape[:2], width)
    h1, w1 = geometry.resized_size
    if (h1, w1) != geometry.src_size:
        resized = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize((w1, h1), Image.Resampling.BICUBIC))
    else:
        resized = rgb
    h, w = geometry.out_size
    top = geometry.crop_top
    cropped = np.array(resized[top:top + h, :w], order="C")
    tensor = torch.from_numpy(cropped).permute(2, 0, 1).float().div(255)[None].contiguous()
    return PreprocessedImage(tensor=tensor, rgb=cropped, transform=geometry)
