"""A rendered stereo sequence in the KITTI odometry layout, with exact ground truth (for tests).

The demo room of :mod:`slam.synthetic` is ray-cast from a left camera on part of the demo path and from a
right camera ``baseline`` metres along the left camera's x axis (a rectified pair: same K, same rotation).
Written as ``<root>/sequences/<seq>/image_2`` and ``image_3`` (colour) with ``calib.txt`` (P0..P3 in
KITTI's convention ``P<n>[0,3] = -fx * x_n``), ``times.txt`` and ``<root>/poses/<seq>.txt`` (T_wc of the
left camera).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from slam.synthetic import DemoRenderer, camera_path


def write_calib(path: Path, K: np.ndarray, baseline: float, lines: tuple[str, ...] = ("P0", "P1", "P2", "P3")) -> None:
    rows = []
    for name in lines:
        P = np.zeros((3, 4))
        P[:, :3] = K
        if name in ("P1", "P3"):
            P[0, 3] = -K[0, 0] * baseline
        rows.append(f"{name}: " + " ".join(f"{v:.12e}" for v in P.reshape(-1)))
    path.write_text("\n".join(rows) + "\n")


def render_stereo_kitti(root: Path, n_frames: int = 24, size: tuple[int, int] = (240, 320),
                        baseline: float = 0.12, loop_frames: int = 80, seq: str = "00") -> Path:
    """Render ``n_frames`` consecutive frames of the demo path (a closed loop of ``loop_frames`` frames) as a
    KITTI colour stereo sequence; returns the sequence folder."""
    seq_dir = root / "sequences" / seq
    for cam in ("image_2", "image_3"):
        (seq_dir / cam).mkdir(parents=True, exist_ok=True)
    renderer = DemoRenderer(size, seed=0)
    poses = camera_path(loop_frames)[:n_frames]
    offset = np.eye(4)
    offset[0, 3] = baseline
    for i, T_wc in enumerate(poses):
        for cam, T in (("image_2", T_wc), ("image_3", T_wc @ offset)):
            rgb, _ = renderer.render(T)
            assert cv2.imwrite(str(seq_dir / cam / f"{i:06d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    write_calib(seq_dir / "calib.txt", renderer.K, baseline)
    (seq_dir / "times.txt").write_text("".join(f"{0.1 * i:.6e}\n" for i in range(n_frames)))
    (root / "poses").mkdir(exist_ok=True)
    (root / "poses" / f"{seq}.txt").write_text(
        "\n".join(" ".join(f"{v:.9e}" for v in T[:3].reshape(-1)) for T in poses) + "\n")
    return seq_dir
