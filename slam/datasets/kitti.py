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

Stereo: with a left camera (``image_0`` or ``image_2``) whose partner folder (``image_1`` / ``image_3``)
exists, or with ``stereo: true``, every frame also carries the partner image (``Frame.right``) and the
baseline in metres from the rectified projections, ``b = (P_l[0,3] - P_r[0,3]) / P_r[0,0]`` (KITTI's
``P<n>[0,3] = -fx * x_n`` with ``x_n`` the camera's offset along the rectified x axis). Partner images are
matched to left images by file name; a missing partner, different image counts or a missing ``P``-line
are errors naming the file.

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
from slam.datasets.io import intrinsics_from_list, list_images, read_rgb, read_stereo_pair
from slam.errors import DatasetError
from slam.trajectory import read_kitti, read_kitti_times
from slam.types import Frame

log = logging.getLogger(__name__)

KITTI_DEFAULT_CAMERAS = ("image_2", "image_0")
#: right camera of each left camera of the KITTI rig
STEREO_PARTNER = {"image_0": "image_1", "image_2": "image_3"}
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


def _projection(calib: dict[str, np.ndarray], camera: str, calib_path: Path) -> np.ndarray:
    """3x4 rectified projection ``P<n>`` of the KITTI camera folder ``image_<n>``."""
    key = f"P{camera[-1]}"
    if key not in calib:
        raise DatasetError(f"no {key} (projection of {camera}) in the calibration", calib_path)
    return calib[key]


def stereo_baseline(P_left: np.ndarray, P_right: np.ndarray, where: Path | str) -> float:
    """Baseline (m) of a rectified pair from its 3x4 projections; the right camera must be to the right."""
    if not np.allclose(P_left[:, :3], P_right[:, :3], rtol=1e-6, atol=1e-6):
        raise DatasetError("left and right projections have different intrinsics: not a rectified pair", where)
    baseline = float((P_left[0, 3] - P_right[0, 3]) / P_right[0, 0])
    if not baseline > 0:
        raise DatasetError(f"stereo baseline from the projections is {baseline:.4g} m; expected > 0 "
                           "(right camera to the right of the left one)", where)
    return baseline


def partner_images(left: list[Path], right_dir: Path) -> list[Path]:
    """Right images named like the ``left`` ones in ``right_dir``; errors name the missing file."""
    if not right_dir.is_dir():
        raise DatasetError("stereo partner folder not found", right_dir)
    right = list_images(right_dir)
    if len(right) != len(left):
        raise DatasetError(f"{len(right)} right images for {len(left)} left images in {left[0].parent}", right_dir)
    by_name = {p.name: p for p in right}
    for path in left:
        if path.name not in by_name:
            raise DatasetError(f"no right image for the left image {path.name}", right_dir / path.name)
    return [by_name[p.name] for p in left]


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

        partner = STEREO_PARTNER.get(self.camera)
        use_stereo = cfg.stereo if cfg.stereo is not None else (partner is not None and (seq_dir / partner).is_dir())
        if use_stereo and partner is None:
            raise DatasetError(f"stereo needs a left camera (image_0 or image_2), not {self.camera}", seq_dir)
        calib_path = seq_dir / "calib.txt"
        calib = None
        if cfg.intrinsics is None or use_stereo:
            if not calib_path.is_file():
                raise DatasetError("no calib.txt in the KITTI sequence (or set dataset.intrinsics)", seq_dir)
            calib = read_kitti_calib(calib_path)
        if cfg.intrinsics is not None:
            self.K = intrinsics_from_list(cfg.intrinsics, "dataset.intrinsics")
        else:
            self.K = _projection(calib, self.camera, calib_path)[:, :3].copy()

        self._images = list_images(seq_dir / self.camera)
        if not self._images:
            raise DatasetError("no images (.png/.jpg) in the camera folder", seq_dir / self.camera)
        n = len(self._images)

        self.baseline: float | None = None
        self._right: list[Path] | None = None
        if use_stereo:
            self.baseline = stereo_baseline(_projection(calib, self.camera, calib_path),
                                            _projection(calib, partner, calib_path), calib_path)
            self._right = partner_images(self._images, seq_dir / partner)

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

    @property
    def is_stereo(self) -> bool:
        return self._right is not None

    def __iter__(self) -> Iterator[Frame]:
        for index, i in enumerate(self._selected):
            path = self._images[i]
            if self._right is None:
                rgb, right = read_rgb(path), None
            else:
                rgb, right = read_stereo_pair(path, self._right[i])
            yield Frame(
                index=index,
                timestamp=float(self._stamps[i]),
                rgb=rgb,
                K=self.K.copy(),
                right=right,
                baseline=self.baseline,
                gt_pose=None if self._gt_poses is None else self._gt_poses[i].copy(),
                source=str(path),
            )
