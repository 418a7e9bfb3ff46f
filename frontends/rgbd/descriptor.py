"""A cheap global image descriptor for place recognition (loop-closure retrieval).

Three L2-normalised parts are concatenated with weights and the result is L2-normalised, so that the
cosine similarity of two descriptors is their dot product:

* layout (weight 0.6): a zero-mean, unit-variance grey thumbnail (``size`` = width x height cells) of
  the blurred image -- coarse appearance and where things are;
* gradients (weight 0.6): per cell of a 4x3 grid, an 8-bin histogram of gradient orientations weighted by
  gradient magnitude (square-rooted) -- structure, robust to brightness changes;
* colour (weight 0.5): a hue x saturation histogram (12 x 3 bins, square-rooted) of the whole image,
  independent of the viewpoint within a place.

Views of the same place from nearby poses score close to 1, views of other parts of a scene lower. The
descriptor is a retrieval cue only; the backend verifies every candidate geometrically.
"""

from __future__ import annotations

import cv2
import numpy as np

_WEIGHTS = (0.6, 0.6, 0.5)


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32).ravel()
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-12 else v


def global_descriptor(rgb: np.ndarray, size: tuple[int, int] = (16, 12)) -> np.ndarray:
    """L2-normalised float32 descriptor of an hxwx3 uint8 RGB image.

    Args:
        rgb: hxwx3 uint8 RGB.
        size: (width, height) of the layout thumbnail.

    Returns:
        1-D float32 vector of length ``w*h + 96 + 36``, unit L2 norm.
    """
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    small = cv2.resize(grey, (64, 48), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (5, 5), 1.0)

    thumb = cv2.resize(small, tuple(size), interpolation=cv2.INTER_AREA).ravel()
    layout = (thumb - thumb.mean()) / (thumb.std() + 1e-3)

    gx = cv2.Sobel(small, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(small, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.sqrt(gx * gx + gy * gy)
    ori = (np.arctan2(gy, gx) % np.pi) / np.pi * 8  # unsigned orientation in [0, 8)
    bins = np.minimum(ori.astype(np.int64), 7)
    cell = (np.arange(48)[:, None] // 16) * 4 + (np.arange(64)[None, :] // 16)  # 4x3 grid of 16x16 cells
    hog = np.bincount((cell * 8 + bins).ravel(), weights=mag.ravel(), minlength=96)
    gradients = np.sqrt(hog)

    hsv = cv2.cvtColor(cv2.resize(np.ascontiguousarray(rgb), (64, 48), interpolation=cv2.INTER_AREA),
                       cv2.COLOR_RGB2HSV)
    hue = np.minimum(hsv[..., 0].astype(np.int64) * 12 // 180, 11)
    sat = np.minimum(hsv[..., 1].astype(np.int64) * 3 // 256, 2)
    colour = np.sqrt(np.bincount((hue * 3 + sat).ravel(), minlength=36).astype(np.float32))

    parts = [w * _unit(p) for w, p in zip(_WEIGHTS, (layout, gradients, colour))]
    return _unit(np.concatenate(parts))
