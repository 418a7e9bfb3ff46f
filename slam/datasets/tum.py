"""TUM RGB-D sequences (also ETH3D SLAM and other data in the same layout, e.g. ICL-NUIM re-laid out).

Layout of a sequence folder::

    rgb.txt            'timestamp path' per line ('#' comments), paths relative to the folder
    depth.txt          same for the 16-bit depth PNGs (optional: without it the sequence is RGB only)
    groundtruth.txt    TUM trajectory 'timestamp tx ty tz qx qy qz qw', camera-to-world (optional)
    calibration.txt    'fx fy cx cy' (optional, ETH3D convention)

Association: each rgb frame is paired one-to-one with the depth image closest in time (pairs taken in
order of increasing time difference, like TUM's ``associate.py``), at most ``max_time_diff`` apart;
rgb frames left without depth are dropped (logged with their count). Ground truth is the pose whose
stamp is nearest to the rgb stamp within ``max_time_diff`` (no pose = ``Frame.gt_pose`` None).
Frame time stamps are the rgb stamps. Depth is ``raw / depth_scale`` metres (TUM: 5000).

Intrinsics, first that applies: ``intrinsics`` in the config; the freiburg1/2/3 preset when the folder
name contains ``freiburg1``/``2``/``3`` (the calibrated pinhole values published with the dataset; lens
distortion is ignored, as in most dense SLAM systems); ``calibration.txt``; otherwise a DatasetError.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Iterator

import numpy as np

from slam.datasets.base import DatasetConfig, IndexedDataset, frame_selection, register_dataset, resolve_path
from slam.datasets.io import intrinsics_from_list, read_calibration_txt, read_depth_png, read_rgb
from slam.errors import DatasetError
from slam.trajectory import read_tum
from slam.types import Frame

log = logging.getLogger(__name__)

#: freiburg camera -> (fx, fy, cx, cy) for 640x480 images
TUM_INTRINSICS = {
    "1": (517.3, 516.5, 318.6, 255.3),
    "2": (520.9, 521.0, 325.1, 249.7),
    "3": (535.4, 539.2, 320.1, 247.6),
}
TUM_DEPTH_SCALE = 5000.0


def read_file_list(path: Path) -> tuple[np.ndarray, list[str]]:
    """Time stamps (N,) and relative paths of a TUM ``rgb.txt``/``depth.txt``, sorted by time stamp.

    Lines out of time order are sorted (with a warning); a UTF-8 byte-order mark is accepted.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"cannot read file list ({err})", path) from None
    stamps, names = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.replace(",", " ").split()
        if len(fields) < 2:
            raise DatasetError(f"line {number}: expected 'timestamp path', found {line!r}", path)
        try:
            stamp = float(fields[0])
        except ValueError:
            raise DatasetError(f"line {number}: time stamp {fields[0]!r} is not a number", path) from None
        if not np.isfinite(stamp):
            raise DatasetError(f"line {number}: time stamp {fields[0]!r} is not finite", path)
        stamps.append(stamp)
        names.append(fields[1])
    stamps_arr = np.array(stamps, dtype=np.float64)
    if len(stamps_arr) > 1 and (np.diff(stamps_arr) < 0).any():
        order = np.argsort(stamps_arr, kind="stable")
        log.warning("%s: lines are not in time order; frames are sorted by time stamp", path)
        stamps_arr, names = stamps_arr[order], [names[i] for i in order]
    return stamps_arr, names


def associate(stamps_a: np.ndarray, stamps_b: np.ndarray, max_diff: float) -> list[tuple[int, int]]:
    """One-to-one association of two time-stamp lists.

    All pairs closer than ``max_diff`` are candidates; they are accepted greedily by increasing time
    difference, each index used at most once. Returns ``(i_a, i_b)`` pairs sorted by ``i_a``.
    """
    order_b = np.argsort(stamps_b, kind="stable")
    sorted_b = stamps_b[order_b]
    lo = np.searchsorted(sorted_b, stamps_a - max_diff, side="left")
    hi = np.searchsorted(sorted_b, stamps_a + max_diff, side="right")
    candidates = [
        (abs(stamps_a[i] - sorted_b[k]), i, int(order_b[k])) for i in range(len(stamps_a)) for k in range(lo[i], hi[i])
    ]
    candidates.sort()
    used_a, used_b, pairs = set(), set(), []
    for _, i, j in candidates:
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            pairs.append((i, j))
    return sorted(pairs)


def nearest_within(stamps_query: np.ndarray, stamps_ref: np.ndarray, max_diff: float) -> np.ndarray:
    """For each query stamp, the index of the nearest reference stamp, or -1 if none within ``max_diff``."""
    if len(stamps_ref) == 0:
        return np.full(len(stamps_query), -1, dtype=np.int64)
    order = np.argsort(stamps_ref, kind="stable")
    sorted_ref = stamps_ref[order]
    pos = np.searchsorted(sorted_ref, stamps_query)
    left = np.clip(pos - 1, 0, len(sorted_ref) - 1)
    right = np.clip(pos, 0, len(sorted_ref) - 1)
    closer_right = np.abs(sorted_ref[right] - stamps_query) < np.abs(sorted_ref[left] - stamps_query)
    best = np.where(closer_right, right, left)
    within = np.abs(sorted_ref[best] - stamps_query) <= max_diff
    return np.where(within, order[best], -1).astype(np.int64)


def tum_intrinsics(root: Path, cfg: DatasetConfig) -> np.ndarray:
    """K for a TUM-layout folder: config, freiburg preset, calibration.txt (see module doc)."""
    if cfg.intrinsics is not None:
        return intrinsics_from_list(cfg.intrinsics, "dataset.intrinsics")
    match = re.search(r"freiburg([123])", root.resolve().name)
    if match:
        return intrinsics_from_list(TUM_INTRINSICS[match.group(1)], root)
    calibration = root / "calibration.txt"
    if calibration.is_file():
        return read_calibration_txt(calibration)
    raise DatasetError(
        "unknown camera intrinsics: the folder name has no 'freiburg1/2/3' and there is no calibration.txt "
        "('fx fy cx cy'); set dataset.intrinsics: [fx, fy, cx, cy]",
        root,
    )


@register_dataset("tum")
class TumDataset(IndexedDataset):
    """A TUM RGB-D sequence folder; see the module docstring for layout, association and intrinsics."""

    def __init__(self, cfg: DatasetConfig):
        self.cfg = cfg
        self.root = root = resolve_path(cfg.path)
        if not root.is_dir():
            raise DatasetError("TUM sequence folder not found", root)
        rgb_txt = root / "rgb.txt"
        if not rgb_txt.is_file():
            raise DatasetError("no rgb.txt in the TUM sequence folder", root)
        stamps, rgb_names = read_file_list(rgb_txt)
        if len(stamps) == 0:
            raise DatasetError("no frames listed", rgb_txt)
        rgb_paths = [root / n for n in rgb_names]
        depth_paths: list[Path] | None = None

        depth_txt = root / "depth.txt"
        if depth_txt.is_file():
            depth_stamps, depth_names = read_file_list(depth_txt)
            pairs = associate(stamps, depth_stamps, cfg.max_time_diff)
            if not pairs:
                raise DatasetError(
                    f"no rgb frame has a depth image within max_time_diff={cfg.max_time_diff} s", depth_txt
                )
            if len(pairs) < len(stamps):
                log.warning(
                    "%s: %d of %d rgb frames have no depth image within %g s and are skipped",
                    root, len(stamps) - len(pairs), len(stamps), cfg.max_time_diff,
                )
            keep = [i for i, _ in pairs]
            stamps = stamps[keep]
            rgb_paths = [rgb_paths[i] for i in keep]
            depth_paths = [root / depth_names[j] for _, j in pairs]

        self._gt_poses: np.ndarray | None = None
        gt_txt = root / "groundtruth.txt"
        if gt_txt.is_file():
            gt = read_tum(gt_txt)
            idx = nearest_within(stamps, gt.timestamps, cfg.max_time_diff)
            poses = np.full((len(stamps), 4, 4), np.nan)
            poses[idx >= 0] = gt.poses[idx[idx >= 0]]
            if (idx < 0).any():
                log.info("%s: %d of %d frames have no ground-truth pose within %g s",
                         root, int((idx < 0).sum()), len(stamps), cfg.max_time_diff)
            self._gt_poses = poses

        self.K = tum_intrinsics(root, cfg)
        self.depth_scale = TUM_DEPTH_SCALE if cfg.depth_scale is None else float(cfg.depth_scale)
        self._stamps = stamps
        self._rgb_paths = rgb_paths
        self._depth_paths = depth_paths
        self._selected = frame_selection(len(stamps), cfg)

    @property
    def has_depth(self) -> bool:
        return self._depth_paths is not None

    def __iter__(self) -> Iterator[Frame]:
        for index, i in enumerate(self._selected):
            rgb_path = self._rgb_paths[i]
            rgb = read_rgb(rgb_path)
            depth = None
            if self._depth_paths is not None:
                depth_path = self._depth_paths[i]
                depth = read_depth_png(depth_path, self.depth_scale)
                if depth.shape != rgb.shape[:2]:
                    raise DatasetError(
                        f"depth image is {depth.shape[1]}x{depth.shape[0]} but colour image {rgb_path.name} "
                        f"is {rgb.shape[1]}x{rgb.shape[0]}",
                        depth_path,
                    )
            gt_pose = None
            if self._gt_poses is not None and np.isfinite(self._gt_poses[i]).all():
                gt_pose = self._gt_poses[i].copy()
            yield Frame(
                index=index,
                timestamp=float(self._stamps[i]),
                rgb=rgb,
                depth=depth,
                K=self.K.copy(),
                gt_pose=gt_pose,
                source=str(rgb_path),
            )
