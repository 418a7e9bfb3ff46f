"""Pinhole intrinsics under resizing and cropping.

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
