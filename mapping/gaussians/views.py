"""Keyframe windows and view preprocessing for tttLRM (numpy / OpenCV; no torch).

Intrinsics: SLAM ``K`` matrices use OpenCV's convention (pixel centres at integer coordinates); tttLRM's
``fxfycxcy`` put pixel centres at +0.5 (``cx = W/2`` is the image centre), so ``cx_tttlrm = cx + 0.5``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from slam.camera import crop_intrinsics, scale_intrinsics


@dataclass(frozen=True)
class Window:
    """One model run: ``views`` are positions in the keyframe list (ascending, repeats allowed when padding);
    the Gaussians of the views in ``owned`` are kept, the others only give context."""

    views: tuple[int, ...]
    owned: tuple[int, ...]


def plan_windows(n: int, window: int, multiple: int = 1) -> list[Window]:
    """Split ``n`` keyframes (in creation order) into consecutive windows of ``window`` views.

    With ``multiple`` > 1 (AR mode) every window holds a multiple of it: ``window`` is rounded down to one
    (at least ``multiple``), and a short last window is completed with the keyframes just before it (context,
    not owned), or, when there are too few keyframes, by repeating its last keyframe.
    """
    if n <= 0:
        return []
    size = max(multiple, window // multiple * multiple)
    plans = []
    for start in range(0, n, size):
        owned = tuple(range(start, min(start + size, n)))
        need = -(-len(owned) // multiple) * multiple
        before = tuple(range(max(0, start - (need - len(owned))), start))
        views = before + owned
        views = views + (views[-1],) * (need - len(views))
        plans.append(Window(views=views, owned=owned))
    return plans


def fit_view(rgb: np.ndarray, K: np.ndarray, size: tuple[int, int], fit: str = "crop") -> tuple[np.ndarray, np.ndarray]:
    """Bring one image to the model's input size.

    Args:
        rgb: HxWx3 uint8 RGB.
        K: 3x3 intrinsics of ``rgb`` (OpenCV convention).
        size: ``(H, W)`` model input.
        fit: 'crop' (centre crop to the aspect ratio of ``size``, then resize) or 'stretch' (resize with
            independent x / y factors, as the official loader).

    Returns:
        ``image [3, H, W]`` float32 in [0, 1] and ``fxfycxcy [4]`` float32 in tttLRM's +0.5 convention.
    """
    out_h, out_w = size
    h, w = rgb.shape[:2]
    if fit == "crop":
        if h * out_w > w * out_h:  # too tall: crop rows
            crop_h = max(1, round(w * out_h / out_w))
            top = (h - crop_h) // 2
            rgb, K = rgb[top:top + crop_h], crop_intrinsics(K, top, 0)
        elif h * out_w < w * out_h:  # too wide: crop columns
            crop_w = max(1, round(h * out_w / out_h))
            left = (w - crop_w) // 2
            rgb, K = rgb[:, left:left + crop_w], crop_intrinsics(K, 0, left)
        h, w = rgb.shape[:2]
    K = scale_intrinsics(K, (h, w), (out_h, out_w))
    interp = cv2.INTER_AREA if out_h < h or out_w < w else cv2.INTER_CUBIC
    img = cv2.resize(np.ascontiguousarray(rgb), (out_w, out_h), interpolation=interp)
    image = (img.astype(np.float32) / 255.0).transpose(2, 0, 1)
    fxfycxcy = np.array([K[0, 0], K[1, 1], K[0, 2] + 0.5, K[1, 2] + 0.5], dtype=np.float32)
    return np.ascontiguousarray(image), fxfycxcy
