"""KITTI odometry sequences.

Layout (the official one)::

    <root>/sequences/NN/calib.txt      'P0: 12 floats' ... 'P3: ...' (3x4 rectified projections)
    <root>/sequences/NN/times.txt      one time stamp (s) per frame
    <root>/sequences/NN/image_0/*.png  grey left, image_1 grey right, image_2 colour left, image_3 colour right
    <root>/poses/NN.txt                ground truth, KITTI format (sequences 00-10 only)

``path`` is either the sequence folder ``<root>/sequences/NN`` or ``<root>`` together with
``sequence: NN``. The camera is ``camera`` from the config, else ``image_2`` if present, else ``image_0``
(grey images are replicated to RGB). ``K`` is the left 3x3 block of that camera's projection ``P<n>``.
Without ``times.txt`` time stamps are ``index / 10`` s (KITTI records at 10 Hz), with a warning.

Ground truth: ``poses/NN.txt`` holds camera-0 poses. They are used as they are for every camera,
as KITTI's own evaluation does; for ``image_2`` this ignores the constant ~6 cm sideways offset
between camera 0 and camera 2 (same orientation after rectification).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Iterator

import numpy as np

from slam.datasets.base import DatasetConfig, IndexedDataset, frame_selection, register_dataset, resolve_path
from slam.datasets.io import intrinsics_from_list, list_images, read_rgb
from slam.errors import DatasetError
from slam.trajectory import read_kitti, read_kitti_times
from slam.types import Frame

log = logging.getLogger(__name__)

KITTI_DEFAULT_CAMERAS = ("image_2", "image_0")
KITTI_FPS = 10.0


def read_kitti_calib(path: Path) -> dict[str, np.ndarray]:
    """The 3x4 matrices of a KITTI ``calib.txt`` (``P0``..``P3``, ``Tr``), keyed by name."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"cannot read calibration ({err})", path) from None
    matrices = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, values = line.partition(":")
        if not sep:
            raise DatasetError(f"line {number}: expected 'NAME: 12 numbers', found {line.strip()!r}", path)
        try:
            numbers = [float(v) for v in values.split()]
        except ValueError:
            raise DatasetError(f"line {number}: not a number in {line.strip()!r}", path) from None
        if len(numbers) != 12:
            raise DatasetError(f"line {number}: {key.strip()} has {len(numbers)} values, expected 12", path)
        matrices[key.strip()] = np.array(numbers).reshape(3, 4)
    return matrices


def locate_sequence(cfg: DatasetConfig) -> tuple[Path, str]:
    """(sequence folder, sequence id) from ``path`` and ``sequence`` (see module doc)."""
    path = resolve_path(cfg.path)
    if not path.is_dir():
        raise DatasetError("KITTI folder not found", path)
    if cfg.sequence is not None:
        for candidate in (path / "sequences" / cfg.sequence, path / cfg.sequence):
            if candidate.is_dir():
                return candidate, cfg.sequence
        if (path / "calib.txt").is_file() and path.name == cfg.sequence:
            return path, cfg.sequence
        raise DatasetError(f"KITTI sequence {cfg.sequence!r} not found (looked for sequences/{cfg.sequence})", path)
    if (path / "sequences").is_dir():
        found = sorted(p.name for p in (path / "sequences").iterdir() if p.is_dir())
        raise DatasetError(
            f"this is a KITTI root with sequences {', '.join(found) or 'none'}: set dataset.sequence", path
        )
    return path, path.resolve().name


@register_dataset("kitti")
class KittiDataset(IndexedDataset):
    """A KITTI odometry sequence; see the module docstring."""

    def __init__(self, cfg: DatasetConfig):
        self.cfg = cfg
        self.root, self.sequence = seq_dir, seq_id = locate_sequence(cfg)

        cameras = (cfg.camera,) if cfg.camera else KITTI_DEFAULT_CAMERAS
        present = [c for c in cameras if (seq_dir / c).is_dir()]
        if not present:
            raise DatasetError(f"no camera folder {' or '.join(cameras)} in the KITTI sequence", seq_dir)
        self.camera = present[0]
        match = re.fullmatch(r"image_(\d)", self.camera)
        if not match:
            raise DatasetError(f"camera {self.camera!r} is not a KITTI camera folder (image_0..image_3)", seq_dir)

        if cfg.intrinsics is not None:
            self.K = intrinsics_from_list(cfg.intrinsics, "dataset.intrinsics")
        else:
            calib_path = seq_dir / "calib.txt"
            if not calib_path.is_file():
                raise DatasetError("no calib.txt in the KITTI sequence (or set dataset.intrinsics)", seq_dir)
            calib = read_kitti_calib(calib_path)
            key = f"P{match.group(1)}"
            if key not in calib:
                raise DatasetError(f"no {key} (projection of {self.camera}) in the calibration", calib_path)
            self.K = calib[key][:, :3].copy()

        self._images = list_images(seq_dir / self.camera)
        if not self._images:
            raise DatasetError("no images (.png/.jpg) in the camera folder", seq_dir / self.camera)
        n = len(self._images)

        times_path = seq_dir / "times.txt"
        if times_path.is_file():
            self._stamps = read_kitti_times(times_path)
            if len(self._stamps) != n:
                raise DatasetError(f"{len(self._stamps)} time stamps for {n} images in {self.camera}", times_path)
        else:
            log.warning("%s: no times.txt, using index / %g Hz as time stamps", seq_dir, KITTI_FPS)
            self._stamps = np.arange(n, dtype=np.float64) / KITTI_FPS

        self._gt_poses: np.ndarray | None = None
        poses_path = seq_dir.parent.parent / "poses" / f"{seq_id}.txt"
        if seq_dir.parent.name == "sequences" and poses_path.is_file():
            gt = read_kitti(poses_path)
            if len(gt) != n:
                raise DatasetError(f"{len(gt)} poses for {n} images in {seq_dir / self.camera}", poses_path)
            self._gt_poses = gt.poses

        self._selected = frame_selection(n, cfg)

    @property
    def is_kitti(self) -> bool:
        return True

    def __iter__(self) -> Iterator[Frame]:
        for index, i in enumerate(self._selected):
            path = self._images[i]
            yield Frame(
                index=index,
                timestamp=float(self._stamps[i]),
                rgb=read_rgb(path),
                K=self.K.copy(),
                gt_pose=None if self._gt_poses is None else self._gt_poses[i].copy(),
                source=str(path),
            )
