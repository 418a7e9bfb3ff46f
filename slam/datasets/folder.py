"""A plain folder of images (.jpg .jpeg .png .bmp, any letter case), in natural name order.

* Intrinsics: ``intrinsics`` from the config, else ``calibration.txt`` ('fx fy cx cy') in the folder,
  else unknown (``Frame.K`` None; learned frontends estimate it).
* Time stamps: ``times.txt`` in the folder (one value in seconds per line, one line per image), else
  ``index / 30`` s (index in the full folder, before stride), i.e. 30 frames per second.
* All images must have the size of the first one (K belongs to one image size).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from slam.datasets.base import DatasetConfig, IndexedDataset, frame_selection, register_dataset, resolve_path
from slam.datasets.io import intrinsics_from_list, list_images, read_calibration_txt, read_rgb
from slam.errors import DatasetError
from slam.trajectory import read_kitti_times
from slam.types import Frame

FOLDER_FPS = 30.0


def optional_intrinsics(cfg: DatasetConfig, calibration: Path) -> np.ndarray | None:
    """K from the config, else from ``calibration`` if that file exists, else None."""
    if cfg.intrinsics is not None:
        return intrinsics_from_list(cfg.intrinsics, "dataset.intrinsics")
    if calibration.is_file():
        return read_calibration_txt(calibration)
    return None


@register_dataset("folder")
class FolderDataset(IndexedDataset):
    """Images in one folder; see the module docstring."""

    def __init__(self, cfg: DatasetConfig):
        self.cfg = cfg
        self.root = root = resolve_path(cfg.path)
        if not root.is_dir():
            raise DatasetError("image folder not found", root)
        self._images = list_images(root)
        if not self._images:
            raise DatasetError("no images (.jpg .jpeg .png .bmp) in the folder", root)
        self.K = optional_intrinsics(cfg, root / "calibration.txt")
        times_path = root / "times.txt"
        if times_path.is_file():
            self._stamps = read_kitti_times(times_path)
            if len(self._stamps) != len(self._images):
                raise DatasetError(f"{len(self._stamps)} time stamps for {len(self._images)} images", times_path)
        else:
            self._stamps = np.arange(len(self._images), dtype=np.float64) / FOLDER_FPS
        self._selected = frame_selection(len(self._images), cfg)

    def __iter__(self) -> Iterator[Frame]:
        first_size = None
        for index, i in enumerate(self._selected):
            path = self._images[i]
            rgb = read_rgb(path)
            if first_size is None:
                first_size = rgb.shape[:2]
            elif rgb.shape[:2] != first_size:
                raise DatasetError(
                    f"image is {rgb.shape[1]}x{rgb.shape[0]} but the first image is {first_size[1]}x{first_size[0]}; "
                    "all images of a sequence must have one size",
                    path,
                )
            yield Frame(
                index=index,
                timestamp=float(self._stamps[i]),
                rgb=rgb,
                K=None if self.K is None else self.K.copy(),
                source=str(path),
            )
