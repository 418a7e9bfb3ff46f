"""Refusing depth maps that hold no usable pixel (all zero, all 65535, wrong ``dataset.depth_scale`` ...).

A depth frontend fed such maps would run on without geometry: identity poses, empty keyframes and, later,
divisions by zero. :class:`DepthCheck` looks at each frame's depth before the frontend does:

* when none of the first ``startup_frames`` frames has a usable pixel, the run stops with a
  :class:`~slam.errors.DatasetError` naming the sequence and ``dataset.depth_scale`` (exit 2; the frames
  processed so far are still written);
* later frames without a usable pixel are counted and reported in one warning at the end.

"Usable" means finite and inside the frontend's :meth:`~frontends.base.Frontend.usable_depth` range.

:func:`check_frame_size` refuses a frame whose image size differs from the first frame's when the dataset
states intrinsics (K is given for one image size; a different size would silently use wrong intrinsics).
"""

from __future__ import annotations

import logging

import numpy as np

from slam.errors import DatasetError
from slam.types import Frame

log = logging.getLogger(__name__)


class DepthCheck:
    """Per-frame check of ``Frame.depth`` (HxW float metres) against a usable range ``(lo, hi]``."""

    def __init__(self, depth_range: tuple[float, float] | None, where: str, depth_scale: float | None,
                 startup_frames: int = 5):
        self.range = depth_range
        self.where = where
        self.depth_scale = depth_scale
        self.startup_frames = startup_frames
        self.n_checked = 0
        self.n_empty = 0
        self.first_empty: str | None = None
        self.seen_valid = False

    def check(self, frame: Frame) -> None:
        if self.range is None or frame.depth is None:
            return
        lo, hi = self.range
        d = np.asarray(frame.depth)
        usable = int(np.count_nonzero(np.isfinite(d) & (d > lo) & (d <= hi)))
        self.n_checked += 1
        if usable:
            self.seen_valid = True
            return
        self.n_empty += 1
        self.first_empty = self.first_empty or (frame.source or f"frame {frame.index}")
        if not self.seen_valid and self.n_empty >= self.startup_frames:
            raise DatasetError(self._describe(d, f"none of the first {self.n_empty} depth maps"), self.where)

    def _describe(self, depth: np.ndarray, which: str) -> str:
        finite = depth[np.isfinite(depth)]
        seen = (f"values {float(finite.min()):.4g}..{float(finite.max()):.4g} m" if finite.size
                else "no finite value")
        scale = "the dataset default" if self.depth_scale is None else f"{self.depth_scale:g}"
        return (f"{which} has a usable pixel in ({self.range[0]:g}, {self.range[1]:g}] m ({seen}; "
                f"dataset.depth_scale={scale} raw units per metre): check the depth images and "
                f"dataset.depth_scale")

    def finish(self) -> None:
        """Raise when depth was never usable (short runs), else warn about the frames without depth."""
        if self.range is None or self.n_empty == 0:
            return
        if not self.seen_valid:
            raise DatasetError(
                f"no depth map of the {self.n_empty} frames processed has a usable pixel in "
                f"({self.range[0]:g}, {self.range[1]:g}] m: check the depth images and dataset.depth_scale",
                self.where)
        log.warning("%d of %d depth maps had no usable pixel (first: %s); their poses are extrapolated",
                    self.n_empty, self.n_checked, self.first_empty)


def check_frame_size(frame: Frame, first_shape: tuple[int, int] | None) -> tuple[int, int]:
    """Raise a DatasetError naming the frame's file when its size differs from ``first_shape`` (H, W) while
    the frame carries intrinsics; returns the shape to compare the next frames with."""
    shape = tuple(frame.rgb.shape[:2])
    if first_shape is not None and shape != first_shape and frame.K is not None:
        raise DatasetError(f"image is {shape[1]}x{shape[0]} but the sequence started with "
                           f"{first_shape[1]}x{first_shape[0]} images (the intrinsics hold for one size)",
                           frame.source or f"frame {frame.index}")
    return shape if first_shape is None else first_shape
