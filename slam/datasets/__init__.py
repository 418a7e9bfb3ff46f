"""Datasets: TUM RGB-D, KITTI odometry, stereo folders, image folder and video, found by name or detected
from the path.

>>> ds = open_dataset(DatasetConfig(path="rgbd_dataset_freiburg1_desk"))   # kind='auto' -> tum
>>> for frame in ds: ...
"""

from __future__ import annotations

from pathlib import Path

from slam.datasets.base import DATASETS, Dataset, DatasetConfig, frame_selection, register_dataset, resolve_path
from slam.datasets.io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, read_depth_png, read_rgb
from slam.errors import DatasetError

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetConfig",
    "detect_kind",
    "frame_selection",
    "open_dataset",
    "read_depth_png",
    "read_rgb",
    "register_dataset",
]


def detect_kind(path: str | Path) -> str:
    """Dataset name for a path: rgb.txt -> 'tum'; sequences/ or image_2|image_0 with calib.txt -> 'kitti';
    left/ and right/ folders -> 'stereo'; a video file -> 'video'; a folder with images -> 'folder'.
    Raises DatasetError otherwise."""
    path = resolve_path(path)
    if path.is_file():
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            return "video"
        raise DatasetError(
            f"not a dataset: a file that is not a video ({', '.join(VIDEO_EXTENSIONS)})", path
        )
    if not path.is_dir():
        raise DatasetError("dataset path not found", path)
    if (path / "rgb.txt").is_file():
        return "tum"
    if (path / "sequences").is_dir():
        return "kitti"
    if (path / "calib.txt").is_file() and any((path / c).is_dir() for c in ("image_2", "image_0")):
        return "kitti"
    if (path / "left").is_dir() and (path / "right").is_dir():
        return "stereo"
    if any(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir()):
        return "folder"
    raise DatasetError(
        "cannot tell the dataset kind: looked for rgb.txt (TUM), sequences/ or image_2|image_0 with calib.txt "
        f"(KITTI), left/ and right/ (stereo) and image files ({' '.join(IMAGE_EXTENSIONS)}); set dataset.kind",
        path,
    )


def open_dataset(cfg: DatasetConfig) -> Dataset:
    """Construct the dataset named by ``cfg.kind`` ('auto' = :func:`detect_kind` on ``cfg.path``)."""
    if not cfg.path:
        raise DatasetError("no dataset path given (dataset.path)")
    kind = detect_kind(cfg.path) if cfg.kind == "auto" else cfg.kind
    return DATASETS.get(kind)(cfg)
