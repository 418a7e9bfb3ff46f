"""Dataset interface, options and registry.

A dataset yields :class:`~slam.types.Frame` objects lazily (one image read per frame, never the whole
sequence in memory). Stride / first / last / max_frames are applied by the dataset so that ``len()``
and the frame indices agree with what is streamed.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from slam.config_loader import bounded
from slam.errors import DatasetError
from slam.registry import Registry
from slam.types import Frame


@dataclass
class DatasetConfig:
    """Options of the ``dataset:`` config section.

    Attributes:
        kind: registered dataset name ('tum', 'kitti', 'folder', 'video') or 'auto' (detect from path).
        path: sequence folder or video file.
        stride: keep every ``stride``-th frame.
        first: index (before striding) of the first frame to use.
        last: index (before striding) of the last frame to use, inclusive; None = to the end.
        max_frames: stop after this many frames; None = no limit.
        intrinsics: ``[fx, fy, cx, cy]`` in pixels of the original images; overrides files/presets.
        depth_scale: raw depth units per metre (TUM: 5000); None = the dataset's default.
        max_time_diff: maximum time-stamp difference in seconds for rgb/depth/ground-truth association.
        camera: KITTI camera folder ('image_2' colour left, 'image_0' grey left); None = first present.
        sequence: KITTI sequence id ('00'...) when ``path`` is the dataset root; None = infer from path.
        stereo: load the right image of a stereo pair (KITTI ``image_1``/``image_3``): True = required,
            False = never, None = when the partner folder exists.
    """

    kind: str = "auto"
    path: str = ""
    stride: int = bounded(1, ge=1)
    first: int = bounded(0, ge=0)
    last: int | None = bounded(None, ge=0)
    max_frames: int | None = bounded(None, ge=1)
    intrinsics: list[float] | None = None
    depth_scale: float | None = bounded(None, gt=0, lt=math.inf)
    max_time_diff: float = bounded(0.02, gt=0)
    camera: str | None = None
    sequence: str | None = None
    stereo: bool | None = None

    def validate(self) -> None:
        """Cross-field checks (single-field ranges are declared with :func:`bounded`)."""
        if self.last is not None and self.last < self.first:
            raise ValueError(f"last ({self.last}) must be >= first ({self.first})")
        if self.intrinsics is not None:
            k = self.intrinsics
            if len(k) != 4 or not all(math.isfinite(v) for v in k) or k[0] <= 0 or k[1] <= 0:
                raise ValueError(f"intrinsics must be [fx, fy, cx, cy] with fx, fy > 0, got {k!r}")


class Dataset(ABC):
    """A sequence of frames. Iterating opens the images lazily."""

    #: registered name
    name: str = ""

    @abstractmethod
    def __len__(self) -> int:
        """Number of frames that iteration yields (after stride/first/last/max_frames)."""

    @abstractmethod
    def __iter__(self) -> Iterator[Frame]:
        """Yield frames in order; ``Frame.index`` runs 0..len-1."""

    @property
    def has_depth(self) -> bool:
        return False

    @property
    def has_ground_truth(self) -> bool:
        return False

    def ground_truth(self):
        """Ground-truth :class:`~slam.trajectory.Trajectory` of the streamed frames, or None."""
        return None

    @property
    def is_kitti(self) -> bool:
        """True when trajectories should also be written in KITTI format."""
        return False


class IndexedDataset(Dataset):
    """A dataset over a known list of frames (files), of which ``_selected`` are streamed.

    Subclasses set, in ``__init__``: ``_stamps`` ((n,) seconds of every frame), ``_selected`` (indices
    into it, from :func:`frame_selection`) and optionally ``_gt_poses`` ((n,4,4) ``T_wc`` of every frame,
    NaN where unknown).
    """

    _stamps: np.ndarray
    _selected: list[int]
    _gt_poses: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._selected)

    @property
    def has_ground_truth(self) -> bool:
        return self._gt_poses is not None

    def ground_truth(self):
        """Ground truth of the streamed frames, one row per frame (NaN pose where none matched), or None."""
        from slam.trajectory import Trajectory

        if self._gt_poses is None:
            return None
        return Trajectory(self._stamps[self._selected], self._gt_poses[self._selected])


#: Built-ins: the modules of ``slam.datasets``; plug-ins: entry points of ``ttsa_slam.datasets`` (name -> module
#: that calls :func:`register_dataset`). Select one with ``dataset.kind=<name>``.
DATASETS: Registry[Callable[[DatasetConfig], Dataset]] = Registry(
    "dataset", package="slam.datasets", group="ttsa_slam.datasets", skip=("base", "io"))


def register_dataset(name: str):
    """Class decorator: register a :class:`Dataset` subclass constructed as ``cls(config)``."""

    def decorator(cls):
        cls.name = name
        DATASETS.register(name)(cls)
        return cls

    return decorator


def frame_selection(n_total: int, cfg: DatasetConfig) -> list[int]:
    """Indices (into the full sequence of ``n_total`` frames) selected by first/last/stride/max_frames."""
    if n_total > 0 and cfg.first >= n_total:
        raise DatasetError(f"dataset.first={cfg.first} is beyond the end of the sequence ({n_total} frames, "
                           f"indices 0..{n_total - 1})", cfg.path or None)
    last = n_total - 1 if cfg.last is None else min(cfg.last, n_total - 1)
    selected = list(range(max(cfg.first, 0), last + 1, max(cfg.stride, 1)))
    if cfg.max_frames is not None:
        selected = selected[: cfg.max_frames]
    return selected


def resolve_path(path: str | Path) -> Path:
    return Path(path).expanduser()
