"""Reading images, depth maps and small calibration files for the datasets.

Every failure is a :class:`~slam.errors.DatasetError` naming the file.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from slam.errors import DatasetError
from slam.geometry import intrinsics_matrix

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


def _imread(path: str | Path, flags: int, what: str) -> np.ndarray:
    """``cv2.imread`` with clear errors naming the file: missing, or not decodable as ``what``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{what} file not found", path)
    image = cv2.imread(str(path), flags)
    if image is None:
        raise DatasetError(f"cannot decode {what} (corrupt or unsupported format)", path)
    return image


def read_rgb(path: str | Path) -> np.ndarray:
    """Read a colour or grey image as HxWx3 uint8 RGB (grey is replicated to three channels)."""
    return cv2.cvtColor(_imread(path, cv2.IMREAD_COLOR, "image"), cv2.COLOR_BGR2RGB)


#: the top 16-bit code: sensors and converters write it for saturated or missing returns, never as a range
DEPTH_SATURATED = np.iinfo(np.uint16).max


def read_depth_png(path: str | Path, scale: float) -> np.ndarray:
    """Read a 16-bit depth PNG as HxW float32 metres: ``raw / scale``, with 0 (no return) and 65535
    (saturated / no return) both read as 0 = invalid."""
    raw = _imread(path, cv2.IMREAD_UNCHANGED, "depth image")
    if raw.ndim != 2 or raw.dtype != np.uint16:
        raise DatasetError(f"depth must be a single-channel 16-bit image, got {raw.dtype} {raw.shape}", path)
    depth = raw.astype(np.float32) / np.float32(scale)
    depth[raw == DEPTH_SATURATED] = 0.0
    return depth


def intrinsics_from_list(values, source: str | Path) -> np.ndarray:
    """3x3 K from ``[fx, fy, cx, cy]``; ``source`` names the config key or file for errors."""
    try:
        fx, fy, cx, cy = (float(v) for v in values)
    except (TypeError, ValueError):
        raise DatasetError(f"intrinsics must be four numbers [fx, fy, cx, cy], got {values!r}", source) from None
    if not (np.isfinite([fx, fy, cx, cy]).all() and fx > 0 and fy > 0):
        raise DatasetError(f"invalid intrinsics fx={fx} fy={fy} cx={cx} cy={cy}", source)
    return intrinsics_matrix(fx, fy, cx, cy)


def calibration_fields(path: str | Path, expected: str) -> list[str]:
    """Values of the first data line of a calibration text file (``#`` comments and blank lines skipped,
    commas or spaces between values); ``expected`` (e.g. ``'fx fy cx cy'``) names them in errors."""
    path = Path(path)
    try:
        lines = [ln.split("#", 1)[0].strip() for ln in path.read_text(encoding="utf-8-sig").splitlines()]
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"cannot read calibration file ({err})", path) from None
    data = [ln for ln in lines if ln]
    if not data:
        raise DatasetError(f"calibration file is empty (expected '{expected}')", path)
    fields = data[0].replace(",", " ").split()
    if len(fields) != len(expected.split()):
        raise DatasetError(f"expected {len(expected.split())} values '{expected}', found {len(fields)}", path)
    return fields


def read_calibration_txt(path: str | Path) -> np.ndarray:
    """K from a ``calibration.txt`` holding ``fx fy cx cy`` on its first data line (ETH3D convention)."""
    return intrinsics_from_list(calibration_fields(path, "fx fy cx cy"), Path(path))


def read_stereo_pair(left: Path, right: Path) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) HxWx3 uint8 RGB images of a stereo pair; a size mismatch is an error naming ``right``."""
    rgb, other = read_rgb(left), read_rgb(right)
    if other.shape != rgb.shape:
        raise DatasetError(f"right image is {other.shape[1]}x{other.shape[0]} but the left image is "
                           f"{rgb.shape[1]}x{rgb.shape[0]}", right)
    return rgb, other


def natural_sort_key(name: str) -> list:
    """Sort key that orders embedded numbers numerically (frame2 < frame10)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_images(folder: str | Path) -> list[Path]:
    """Image files (by extension, case-insensitive) directly in ``folder``, in natural order."""
    files = [p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: natural_sort_key(p.name))
