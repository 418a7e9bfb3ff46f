"""Depth maps and pointmaps: back-projection, projection, depth-aware downsampling, depth confidence.

Conventions: OpenCV camera axes (x right, y down, z forward), metres. A pointmap is an ``HxWx3`` float32
array of 3-D points in the camera frame, one per pixel; pixel ``(u, v)`` (column, row) has its centre at
integer coordinates. Invalid depth is ``0`` (or non-finite); the matching points are ``(0, 0, 0)``.
"""

from __future__ import annotations

import cv2
import numpy as np


def backproject_depth(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pointmap of a depth map.

    Args:
        depth: HxW depth in metres along the optical axis (z); 0 or non-finite = invalid.
        K: 3x3 pinhole intrinsics for the HxW image (skew is honoured).

    Returns:
        HxWx3 float32 points in the camera frame; invalid pixels are ``(0, 0, 0)``.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth must be HxW, got shape {depth.shape}")
    h, w = depth.shape
    z = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
    fx, s, cx = float(K[0, 0]), float(K[0, 1]), float(K[0, 2])
    fy, cy = float(K[1, 1]), float(K[1, 2])
    v = np.arange(h, dtype=np.float32)[:, None]
    u = np.arange(w, dtype=np.float32)[None, :]
    y_over_z = (v - cy) / fy  # (h, 1)
    x_over_z = (u - cx - s * y_over_z) / fx  # (h, w) (or (1, w) without skew)
    out = np.empty((h, w, 3), dtype=np.float32)
    out[..., 0] = x_over_z * z
    out[..., 1] = y_over_z * z
    out[..., 2] = z
    return out


def downsample_depth(depth: np.ndarray, factor: int, max_spread: float = 0.03) -> np.ndarray:
    """Depth-aware block downsampling by an integer ``factor``.

    Each output pixel is the mean of the valid depths of its ``factor x factor`` input block; it is
    invalid (0) when fewer than half of the block is valid or the valid depths spread by more than
    ``max_spread`` times their mean (a depth discontinuity: averaging would invent "flying" points).
    Rows/columns beyond a multiple of ``factor`` are dropped, so that the output pixel ``(i, j)`` covers
    input pixels ``[f*i, f*i+f) x [f*j, f*j+f)`` (intrinsics: :func:`slam.camera.scale_intrinsics` from
    ``(f*h, f*w)`` to ``(h, w)``).

    Args:
        depth: HxW float depth in metres, 0 = invalid.
        factor: integer >= 1.
        max_spread: relative depth spread that marks a discontinuity.

    Returns:
        (H//factor)x(W//factor) float32 depth in metres.
    """
    depth = np.asarray(depth, dtype=np.float32)
    if factor == 1:
        return np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
    h, w = depth.shape[0] // factor, depth.shape[1] // factor
    total = np.zeros((h, w), np.float32)
    count = np.zeros((h, w), np.int32)
    hi = np.full((h, w), -np.inf, np.float32)
    lo = np.full((h, w), np.inf, np.float32)
    for di in range(factor):
        for dj in range(factor):
            sub = depth[di: h * factor: factor, dj: w * factor: factor]
            valid = np.isfinite(sub) & (sub > 0)
            total += np.where(valid, sub, 0.0)
            count += valid
            np.maximum(hi, np.where(valid, sub, -np.inf), out=hi)
            np.minimum(lo, np.where(valid, sub, np.inf), out=lo)
    mean = total / np.maximum(count, 1)
    ok = (2 * count >= factor * factor) & (hi - lo <= max_spread * mean)
    return np.where(ok, mean, 0.0).astype(np.float32)


def downsample_image(image: np.ndarray, factor: int) -> np.ndarray:
    """Area-average an HxW(xC) image by an integer ``factor`` (same block layout as :func:`downsample_depth`)."""
    if factor == 1:
        return image
    h, w = image.shape[0] // factor, image.shape[1] // factor
    cropped = np.ascontiguousarray(image[: h * factor, : w * factor])
    return cv2.resize(cropped, (w, h), interpolation=cv2.INTER_AREA)


def depth_edges(depth: np.ndarray, max_jump: float = 0.05) -> np.ndarray:
    """HxW bool mask of depth discontinuities: pixels whose 3x3 neighbourhood spans more than
    ``max_jump`` times their own depth (unreliable "flying" points at object boundaries)."""
    z = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(z) & (z > 0)
    kernel = np.ones((3, 3), np.uint8)
    hi = cv2.dilate(np.where(valid, z, 0.0).astype(np.float32), kernel)
    lo = cv2.erode(np.where(valid, z, np.inf).astype(np.float32), kernel)
    return valid & ((hi - lo) > max_jump * z)


def depth_confidence(depth: np.ndarray, depth_scale: float = 2.0, edge_jump: float | None = 0.05) -> np.ndarray:
    """Per-pixel confidence of a depth map, in [0, 1].

    ``c = 1 / (1 + (z / depth_scale)^2)`` for valid depth (structured-light/ToF noise grows roughly with
    ``z^2``, so a point at ``depth_scale`` metres gets half the weight of a very near one), 0 for invalid
    depth and, when ``edge_jump`` is set, 0 on depth discontinuities (see :func:`depth_edges`).

    Returns:
        HxW float32.
    """
    z = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(z) & (z > 0)
    conf = np.where(valid, 1.0 / (1.0 + (np.where(valid, z, 0.0) / depth_scale) ** 2), 0.0).astype(np.float32)
    if edge_jump is not None:
        conf[depth_edges(z, edge_jump)] = 0.0
    return conf


def median_depth(points: np.ndarray, confidence: np.ndarray, min_confidence: float = 0.0) -> float:
    """Median z (> 0) of the confident points of an (h, w, 3) camera-frame pointmap; 1.0 if none."""
    z = points[..., 2]
    mask = (confidence > min_confidence) & np.isfinite(z) & (z > 0)
    return float(np.median(z[mask])) if mask.any() else 1.0
