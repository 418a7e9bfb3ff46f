"""Small generated sequences for tests (TUM layout), written with OpenCV into a temporary folder."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_tum_sequence(root: Path, n: int = 4, size: tuple[int, int] = (48, 64), with_gt: bool = True,
                       calibration: str | None = "50 50 32 24", seed: int = 0) -> Path:
    """Write an ``n``-frame TUM-layout RGB-D sequence (random texture, constant 1 m depth) into ``root``.

    Returns ``root``. The ground-truth camera moves on a parabola in the x-y plane (not a line, so it can be aligned).
    """
    rng = np.random.default_rng(seed)
    h, w = size
    (root / "rgb").mkdir(parents=True, exist_ok=True)
    (root / "depth").mkdir(exist_ok=True)
    rgb_lines, depth_lines, gt_lines = ["# color images"], ["# depth maps"], ["# timestamp tx ty tz qx qy qz qw"]
    for i in range(n):
        t = 100.0 + i / 30.0
        rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        depth = np.full((h, w), 5000, dtype=np.uint16)
        cv2.imwrite(str(root / "rgb" / f"{t:.6f}.png"), rgb[..., ::-1])
        cv2.imwrite(str(root / "depth" / f"{t:.6f}.png"), depth)
        rgb_lines.append(f"{t:.6f} rgb/{t:.6f}.png")
        depth_lines.append(f"{t:.6f} depth/{t:.6f}.png")
        gt_lines.append(f"{t:.6f} {0.01 * i:.6f} {0.002 * i * i:.6f} 0 0 0 0 1")
    (root / "rgb.txt").write_text("\n".join(rgb_lines) + "\n")
    (root / "depth.txt").write_text("\n".join(depth_lines) + "\n")
    if with_gt:
        (root / "groundtruth.txt").write_text("\n".join(gt_lines) + "\n")
    if calibration is not None:
        (root / "calibration.txt").write_text(calibration + "\n")
    return root
