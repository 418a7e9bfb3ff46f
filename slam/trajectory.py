"""Camera trajectories in memory and on disk (TUM and KITTI formats).

* TUM: one pose per line, ``timestamp tx ty tz qx qy qz qw`` (seconds, metres, scalar-last unit quaternion
  of the camera-to-world rotation); ``#`` starts a comment; fields may also be separated by commas.
* KITTI: one pose per line, 12 floats = the first three rows of ``T_wc`` in row-major order; no time
  stamps in the file: they come from a separate ``times.txt`` (one value per line) or are the line index.

Readers raise :class:`~slam.errors.DatasetError` naming the file, the line number and the problem.
Writers are atomic (temporary file + rename), so an interrupted write never leaves half a file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slam.atomic import write_text_atomic
from slam.errors import DatasetError
from slam.geometry import pose_from_tq, pose_to_tq

log = logging.getLogger(__name__)


@dataclass
class Trajectory:
    """A time-stamped sequence of poses.

    Attributes:
        timestamps: (N,) float64 seconds.
        poses: (N, 4, 4) float64 camera-to-world ``T_wc``. Rows may be NaN where a pose is unknown
            (e.g. a frame without ground truth); :meth:`finite` drops them.
    """

    timestamps: np.ndarray
    poses: np.ndarray

    def __post_init__(self) -> None:
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64).reshape(-1)
        self.poses = np.asarray(self.poses, dtype=np.float64)
        if self.poses.size == 0:
            self.poses = self.poses.reshape(0, 4, 4)
        if self.poses.ndim != 3 or self.poses.shape[1:] != (4, 4):
            raise ValueError(f"poses must have shape (N, 4, 4), got {self.poses.shape}")
        if len(self.poses) != len(self.timestamps):
            raise ValueError(f"{len(self.timestamps)} time stamps but {len(self.poses)} poses")

    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def positions(self) -> np.ndarray:
        """(N, 3) camera centres in the world frame."""
        return self.poses[:, :3, 3]

    def finite(self) -> "Trajectory":
        """The rows whose time stamp and pose are all finite."""
        keep = np.isfinite(self.timestamps) & np.isfinite(self.poses).all(axis=(1, 2))
        return Trajectory(self.timestamps[keep], self.poses[keep])


# --------------------------------------------------------------------------------------------- I/O helpers


def _data_lines(path: Path) -> list[tuple[int, list[str]]]:
    """(1-based line number, fields) of the non-empty, non-comment lines of a text file."""
    if not path.is_file():
        raise DatasetError("trajectory file not found", path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"cannot read trajectory file ({err})", path) from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if line:
            rows.append((number, line.replace(",", " ").split()))
    return rows


def _floats(path: Path, number: int, fields: list[str], expected: int, what: str) -> np.ndarray:
    if len(fields) != expected:
        raise DatasetError(f"line {number}: expected {expected} values ({what}), found {len(fields)}", path)
    try:
        values = np.array([float(v) for v in fields], dtype=np.float64)
    except ValueError:
        raise DatasetError(f"line {number}: not a number in {' '.join(fields)!r}", path) from None
    if not np.isfinite(values).all():
        raise DatasetError(f"line {number}: non-finite value in {' '.join(fields)!r}", path)
    return values


# -------------------------------------------------------------------------------------------------- TUM

_TUM_FIELDS = "timestamp tx ty tz qx qy qz qw"


def read_tum(path: str | Path) -> Trajectory:
    """Read a TUM trajectory file (``t tx ty tz qx qy qz qw`` per line, scalar-last quaternion).

    Lines out of time order are sorted by time stamp, with a warning naming the file.
    """
    path = Path(path)
    stamps, poses = [], []
    for number, fields in _data_lines(path):
        v = _floats(path, number, fields, 8, _TUM_FIELDS)
        q = v[4:8]
        if np.linalg.norm(q) < 1e-9:
            raise DatasetError(f"line {number}: zero quaternion", path)
        stamps.append(v[0])
        poses.append(pose_from_tq(v[1:4], q))
    return _time_ordered(Trajectory(np.array(stamps), np.array(poses).reshape(-1, 4, 4)), path)


def _time_ordered(traj: Trajectory, path: Path) -> Trajectory:
    """``traj`` sorted by time stamp (with a warning naming ``path`` when the lines were out of order)."""
    if len(traj) > 1 and (np.diff(traj.timestamps) < 0).any():
        log.warning("%s: poses are not in time order; sorted by time stamp", path)
        order = np.argsort(traj.timestamps, kind="stable")
        return Trajectory(traj.timestamps[order], traj.poses[order])
    return traj


def format_tum(traj: Trajectory) -> str:
    """TUM text of the finite poses of ``traj``; a similarity scale in the rotation block is divided out."""
    traj = traj.finite()
    if len(traj) == 0:
        return f"# {_TUM_FIELDS}\n"
    t, q = pose_to_tq(traj.poses)
    lines = [f"# {_TUM_FIELDS}"]
    for stamp, ti, qi in zip(traj.timestamps, t, q):
        values = " ".join(f"{x:.9f}" for x in (*ti, *qi))
        lines.append(f"{stamp:.6f} {values}")
    return "\n".join(lines) + "\n"


def write_tum_trajectory(path: str | Path, traj: Trajectory) -> None:
    """Write the finite poses of ``traj`` as a TUM file (atomically). Rows with NaN are skipped."""
    write_text_atomic(path, format_tum(traj))


# ------------------------------------------------------------------------------------------------ KITTI


def read_kitti_times(path: str | Path) -> np.ndarray:
    """Read a KITTI ``times.txt`` (one time stamp in seconds per line) into a (N,) float64 array."""
    path = Path(path)
    return np.array([_floats(path, n, f, 1, "timestamp")[0] for n, f in _data_lines(path)], dtype=np.float64)


def read_kitti(path: str | Path, times: str | Path | np.ndarray | None = None) -> Trajectory:
    """Read a KITTI pose file (12 floats per line: rows 0..2 of ``T_wc``).

    Args:
        path: the pose file.
        times: a ``times.txt`` path or an array of time stamps, one per pose; None = the line index
            (0, 1, 2, ... as seconds).
    """
    path = Path(path)
    rows = _data_lines(path)
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    for i, (number, fields) in enumerate(rows):
        poses[i, :3, :4] = _floats(path, number, fields, 12, "rows 0..2 of a 4x4 pose").reshape(3, 4)
    if times is None:
        stamps = np.arange(len(rows), dtype=np.float64)
    else:
        stamps = np.asarray(times, np.float64) if isinstance(times, np.ndarray) else read_kitti_times(times)
        if len(stamps) != len(rows):
            where = "the given time stamps" if isinstance(times, np.ndarray) else str(times)
            raise DatasetError(f"{len(rows)} poses but {len(stamps)} time stamps in {where}", path)
    return Trajectory(stamps, poses)


def format_kitti(traj: Trajectory) -> str:
    """KITTI text of all poses of ``traj`` (one line per pose, so NaN rows are written as ``nan``)."""
    return "".join(" ".join(f"{x:.9e}" for x in T[:3, :4].reshape(-1)) + "\n" for T in traj.poses)


def write_kitti_trajectory(path: str | Path, traj: Trajectory) -> None:
    """Write ``traj`` as a KITTI pose file (atomically). Time stamps are not stored in this format.

    Every pose gets its line (line i = frame i), unknown poses are written as ``nan``.
    """
    write_text_atomic(path, format_kitti(traj))


# ----------------------------------------------------------------------------------------------- generic


def detect_format(path: str | Path) -> str:
    """'tum' or 'kitti' from the number of values on the first data line (8 or 12)."""
    path = Path(path)
    rows = _data_lines(path)
    if not rows:
        raise DatasetError("trajectory file has no poses", path)
    number, fields = rows[0]
    if len(fields) == 8:
        return "tum"
    if len(fields) == 12:
        return "kitti"
    raise DatasetError(
        f"line {number}: {len(fields)} values; expected 8 (TUM: {_TUM_FIELDS}) or 12 (KITTI: 3x4 pose)", path
    )


def read_trajectory(path: str | Path, fmt: str = "auto") -> Trajectory:
    """Read a TUM or KITTI trajectory; ``fmt`` is 'tum', 'kitti' or 'auto' (see :func:`detect_format`).

    KITTI files get line-index time stamps (use :func:`read_kitti` with a ``times.txt`` for real ones).
    """
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "tum":
        return read_tum(path)
    if fmt == "kitti":
        return read_kitti(path)
    raise DatasetError(f"unknown trajectory format {fmt!r} (expected 'tum', 'kitti' or 'auto')", path)


def write_trajectory(path: str | Path, traj: Trajectory, fmt: str = "tum") -> None:
    """Write ``traj`` as 'tum' or 'kitti' (atomically)."""
    if fmt == "tum":
        write_tum_trajectory(path, traj)
    elif fmt == "kitti":
        write_kitti_trajectory(path, traj)
    else:
        raise ValueError(f"unknown trajectory format {fmt!r} (expected 'tum' or 'kitti')")
