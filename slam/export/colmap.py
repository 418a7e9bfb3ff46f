"""Export a run's keyframes and map as a COLMAP text model (``slam export colmap RUN_DIR OUT``).

Written into ``OUT``: ``cameras.txt`` (PINHOLE, one camera per distinct (size, K)), ``images.txt`` (one
image per keyframe: world-to-camera rotation as a scalar-first unit quaternion ``QW QX QY QZ`` with
``QW >= 0`` and translation ``TX TY TZ`` such that ``x_cam = R x_world + t``; an empty 2D-point line),
``points3D.txt`` (map points with colours, error 0, empty tracks) and ``images/`` (the keyframes' colour
images as PNG, named as in ``images.txt``). This is the layout Gaussian-splatting and NeRF trainers read
(``sparse/0`` = ``OUT``). Camera axes are OpenCV's, as COLMAP's; units are the run's (metres for RGB-D).

Inputs from the run folder: ``keyframes.tum`` (keyframe ``T_wc``), ``map.ply`` (optional) and
``run.yaml``, from which the dataset is re-opened to get each keyframe's image size, ``K`` and pixels.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from slam.errors import DatasetError
from slam.geometry import inverse_pose, pose_to_tq
from slam.atomic import write_text_atomic
from slam.trajectory import read_tum

#: Largest time-stamp difference (s) between a keyframe and a dataset frame (TUM files keep 6 decimals).
STAMP_TOLERANCE_S = 1e-4


def _keyframe_frames(run_dir: Path, stamps: np.ndarray) -> list:
    """The dataset frames (with pixels and K) at the keyframe time stamps, in keyframe order."""
    from slam.config import load_run_config
    from slam.datasets import open_dataset

    cfg = load_run_config(run_dir / "run.yaml")
    found: dict[int, object] = {}
    for frame in open_dataset(cfg.dataset):
        k = int(np.argmin(np.abs(stamps - frame.timestamp)))
        if abs(stamps[k] - frame.timestamp) <= STAMP_TOLERANCE_S and k not in found:
            found[k] = frame
            if len(found) == len(stamps):
                break
    missing = [f"{stamps[k]:.6f}" for k in range(len(stamps)) if k not in found]
    if missing:
        raise DatasetError(f"keyframe time stamps not in the dataset of run.yaml: {', '.join(missing[:5])}",
                           run_dir / "keyframes.tum")
    return [found[k] for k in range(len(stamps))]


def colmap_image_line(image_id: int, T_wc: np.ndarray, camera_id: int, name: str) -> str:
    """``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` of a camera-to-world pose (world-to-camera written)."""
    t, q_xyzw = pose_to_tq(inverse_pose(T_wc))
    qw, qx, qy, qz = q_xyzw[3], q_xyzw[0], q_xyzw[1], q_xyzw[2]
    values = " ".join(f"{v + 0.0:.12g}" for v in (qw, qx, qy, qz, *t))  # + 0.0: no "-0"
    return f"{image_id} {values} {camera_id} {name}"


def _map_points(run_dir: Path, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """(N,3) points and (N,3) uint8 colours of ``map.ply`` (evenly thinned to ``max_points``)."""
    path = run_dir / "map.ply"
    if not path.is_file():
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.uint8)
    import open3d as o3d

    pcd = o3d.io.read_point_cloud(str(path))
    xyz = np.asarray(pcd.points, dtype=np.float64)
    rgb = (np.asarray(pcd.colors) * 255.0).round().astype(np.uint8) if pcd.has_colors() else \
        np.full((len(xyz), 3), 128, dtype=np.uint8)
    if max_points > 0 and len(xyz) > max_points:
        keep = np.linspace(0, len(xyz) - 1, max_points).round().astype(int)
        xyz, rgb = xyz[keep], rgb[keep]
    return xyz, rgb


def export_colmap(run_dir: str | Path, out: str | Path, max_points: int = 200_000) -> dict:
    """Write the COLMAP text model of ``run_dir`` into ``out`` (see the module docstring).

    Returns counts: ``{"images", "cameras", "points"}``.
    """
    run_dir, out = Path(run_dir), Path(out)
    kf_path = run_dir / "keyframes.tum"
    if not kf_path.is_file():
        raise DatasetError("no keyframes.tum (is this a folder written by `slam run`?)", kf_path)
    if not (run_dir / "run.yaml").is_file():
        raise DatasetError("no run.yaml (is this a folder written by `slam run`?)", run_dir / "run.yaml")
    keyframes = read_tum(kf_path).finite()
    if len(keyframes) == 0:
        raise DatasetError("no keyframe poses", kf_path)
    frames = _keyframe_frames(run_dir, keyframes.timestamps)
    (out / "images").mkdir(parents=True, exist_ok=True)
    cameras: dict[tuple, int] = {}
    image_lines = ["# IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME (world-to-camera)", "# POINTS2D[] (empty)"]
    for image_id, (frame, T_wc) in enumerate(zip(frames, keyframes.poses), start=1):
        if frame.K is None:
            raise DatasetError("the dataset gives no intrinsics; set dataset.intrinsics in run.yaml", run_dir)
        h, w = frame.rgb.shape[:2]
        K = np.asarray(frame.K, dtype=np.float64)
        key = (w, h, K[0, 0], K[1, 1], K[0, 2], K[1, 2])
        camera_id = cameras.setdefault(key, len(cameras) + 1)
        name = f"{frame.index:06d}.png"
        cv2.imwrite(str(out / "images" / name), np.ascontiguousarray(frame.rgb[..., ::-1]))
        image_lines += [colmap_image_line(image_id, T_wc, camera_id, name), ""]
    camera_lines = ["# CAMERA_ID MODEL WIDTH HEIGHT PARAMS[] (PINHOLE: fx fy cx cy, pixels)"]
    for (w, h, fx, fy, cx, cy), camera_id in cameras.items():
        camera_lines.append(f"{camera_id} PINHOLE {w} {h} {fx:.12g} {fy:.12g} {cx:.12g} {cy:.12g}")
    xyz, rgb = _map_points(run_dir, max_points)
    point_lines = ["# POINT3D_ID X Y Z R G B ERROR TRACK[] (tracks empty)"]
    point_lines += [f"{i} {p[0]:.9g} {p[1]:.9g} {p[2]:.9g} {c[0]} {c[1]} {c[2]} 0"
                    for i, (p, c) in enumerate(zip(xyz, rgb), start=1)]
    write_text_atomic(out / "cameras.txt", "\n".join(camera_lines) + "\n")
    write_text_atomic(out / "images.txt", "\n".join(image_lines) + "\n")
    write_text_atomic(out / "points3D.txt", "\n".join(point_lines) + "\n")
    return {"images": len(frames), "cameras": len(cameras), "points": len(xyz)}
