"""A rectified stereo sequence as two image folders with a calibration file (``dataset.kind=stereo``).

Layout::

    <path>/left/*.png|jpg      left images, natural name order
    <path>/right/*.png|jpg     right images with the same file names
    <path>/calibration.txt     'fx fy cx cy baseline' (pixels of the images, baseline in metres)
    <path>/times.txt           optional: one time stamp (s) per image pair; else index / 10 s
    <path>/poses.txt           optional ground truth: KITTI format (12 floats per line, T_wc of the left camera)

The pair must be rectified (rows aligned, same K). Missing partners, count mismatches and bad calibration
give errors naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from slam.datasets.base import DatasetConfig, IndexedDataset, frame_selection, register_dataset, resolve_path
from slam.datasets.io import calibration_fields, intrinsics_from_list, list_images, read_rgb, read_stereo_pair
from slam.datasets.kitti import partner_images
from slam.errors import DatasetError
from slam.trajectory import read_kitti, read_kitti_times
from slam.types import Frame

STEREO_FPS = 10.0


def read_stereo_calibration(path: Path) -> tuple[np.ndarray, float]:
    """(K 3x3, baseline metres) from a 'fx fy cx cy baseline' calibration file."""
    if not path.is_file():
        raise DatasetError("stereo calibration file not found (expected 'fx fy cx cy baseline')", path)
    fields = calibration_fields(path, "fx fy cx cy baseline")
    K = intrinsics_from_list(fields[:4], path)
    try:
        baseline = float(fields[4])
    except ValueError:
        raise DatasetError(f"baseline is not a number: {fields[4]!r}", path) from None
    if not (np.isfinite(baseline) and baseline > 0):
        raise DatasetError(f"baseline must be > 0 metres, got {baseline}", path)
    return K, baseline


@register_dataset("stereo")
class StereoFolderDataset(IndexedDataset):
    """Left/right image folders with a calibration file; see the module docstring."""

    def __init__(self, cfg: DatasetConfig):
        self.cfg = cfg
        self.root = root = resolve_path(cfg.path)
        if not (root / "left").is_dir():
            raise DatasetError("stereo folder needs a 'left' image folder", root)
        self._images = list_images(root / "left")
        if not self._images:
            raise DatasetError("no images (.jpg .jpeg .png .bmp) in the folder", root / "left")
        # with ``stereo: false`` (a frontend that ignores the partner) the right images are not read
        self._right = None if cfg.stereo is False else partner_images(self._images, root / "right")
        self.K, self.baseline = read_stereo_calibration(root / "calibration.txt")
        if cfg.intrinsics is not None:
            self.K = intrinsics_from_list(cfg.intrinsics, "dataset.intrinsics")
        n = len(self._images)
        times_path = root / "times.txt"
        if times_path.is_file():
            self._stamps = read_kitti_times(times_path)
            if len(self._stamps) != n:
                raise DatasetError(f"{len(self._stamps)} time stamps for {n} image pairs", times_path)
        else:
            self._stamps = np.arange(n, dtype=np.float64) / STEREO_FPS
        poses_path = root / "poses.txt"
        if poses_path.is_file():
            gt = read_kitti(poses_path)
            if len(gt) != n:
                raise DatasetError(f"{len(gt)} poses for {n} image pairs", poses_path)
            self._gt_poses = gt.poses
        self._selected = frame_selection(n, cfg)

    def __iter__(self) -> Iterator[Frame]:
        for index, i in enumerate(self._selected):
            if self._right is None:
                left, right = read_rgb(self._images[i]), None
            else:
                left, right = read_stereo_pair(self._images[i], self._right[i])
            yield Frame(index=index, timestamp=float(self._stamps[i]), rgb=left, K=self.K.copy(),
                        gt_pose=None if self._gt_poses is None else self._gt_poses[i].copy(),
                        source=str(self._images[i]), right=right, baseline=self.baseline)
