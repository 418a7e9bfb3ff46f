"""Pose normalisation of a window of views (spec section 4.2) and the way back to the world frame (section 7).

Poses are OpenCV camera-to-world 4x4 matrices. The normalised frame is ``inv(A) @ c2w`` with translations
divided by ``scene_scale`` (the largest absolute translation component), computed in float64.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from mapping.gaussians.sh import rotate_sh
from slam.geometry import rotmat_to_quat

#: anchor of the normalised frame: mean camera ('full' checkpoints) or first camera ('ar')
NORMALIZE_MODES = ("full", "ar")


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def anchor_pose(c2w: np.ndarray, mode: str) -> np.ndarray:
    """The 4x4 world pose ``A`` of the normalised frame for ``c2w [V,4,4]`` (float64)."""
    if mode == "ar":
        return c2w[0].copy()
    if mode != "full":
        raise ValueError(f"mode: expected one of {', '.join(NORMALIZE_MODES)}, got {mode!r}")
    centre = c2w[:, :3, 3].mean(axis=0)
    z = _normalise(c2w[:, :3, 2].sum(axis=0))
    up = c2w[:, :3, 1].sum(axis=0)
    x = _normalise(np.cross(up, z))
    y = _normalise(np.cross(z, x))
    anchor = np.eye(4)
    anchor[:3, 0], anchor[:3, 1], anchor[:3, 2], anchor[:3, 3] = x, y, z, centre
    return anchor


def normalize_poses(c2w_world: Any, mode: str) -> tuple[Any, Any, float]:
    """Normalise a window of poses.

    Args:
        c2w_world: ``[V,4,4]`` OpenCV camera-to-world poses in the SLAM world frame (numpy or torch).
        mode: 'full' (mean-camera anchor) or 'ar' (first-camera anchor).

    Returns:
        ``(c2w_n [V,4,4] float32, anchor_c2w [4,4] float64, scene_scale)``, the arrays of the input's kind
        (torch tensors on the input's device for a torch input).
    """
    is_torch = type(c2w_world).__module__.startswith("torch")
    poses = (c2w_world.detach().cpu().double().numpy() if is_torch else np.asarray(c2w_world, dtype=np.float64))
    if poses.ndim != 3 or poses.shape[1:] != (4, 4) or len(poses) == 0:
        raise ValueError(f"c2w_world: expected [V, 4, 4], got {list(poses.shape)}")
    anchor = anchor_pose(poses, mode)
    rel = np.linalg.inv(anchor)[None] @ poses
    scale = float(np.abs(rel[:, :3, 3]).max())
    if not scale > 0:
        scale = 1.0  # a single view (or views at one point): nothing to scale
    rel[:, :3, 3] /= scale
    c2w_n = rel.astype(np.float32)
    if is_torch:
        import torch

        dev = c2w_world.device
        return torch.from_numpy(c2w_n).to(dev), torch.from_numpy(anchor).to(dev), scale
    return c2w_n, anchor, scale


def rotation_to_quat(rot: np.ndarray) -> np.ndarray:
    """Unit quaternion ``(w, x, y, z)`` of a 3x3 rotation matrix (w >= 0); :func:`slam.geometry.rotmat_to_quat`
    reordered to scalar-first (the 3DGS convention)."""
    return np.roll(rotmat_to_quat(rot), 1)


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a (x) b`` of ``(w, x, y, z)`` quaternions, broadcast over leading axes."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def to_world(gaussians: Mapping[str, Any], anchor_c2w: Any, scene_scale: float,
             rotate_colour: bool = True) -> dict[str, Any]:
    """Map Gaussians from the normalised frame to the world frame of ``anchor_c2w``.

    ``means_w = s R_A means + t_A``, ``log_scales_w = log_scales + ln s``, ``quats_w = q_A (x) quats``; opacity
    passes through; SH bands 1-3 are rotated by ``R_A`` (DC unchanged) unless ``rotate_colour`` is False.
    Inputs are numpy arrays or torch tensors with any leading axes (e.g. ``[1, N, 3]``); outputs keep each
    input's kind, dtype and device. Arithmetic is float64.
    """
    anchor = np.asarray(anchor_c2w.detach().cpu().double().numpy() if hasattr(anchor_c2w, "detach")
                        else anchor_c2w, dtype=np.float64)
    rot, trans, s = anchor[:3, :3], anchor[:3, 3], float(scene_scale)

    def as_np(x: Any) -> np.ndarray:
        return x.detach().cpu().double().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float64)

    def like(ref: Any, value: np.ndarray) -> Any:
        if hasattr(ref, "detach"):
            import torch

            return torch.from_numpy(value).to(device=ref.device, dtype=ref.dtype)
        return value.astype(np.asarray(ref).dtype)

    out = dict(gaussians)
    if "means" in gaussians:
        out["means"] = like(gaussians["means"], s * as_np(gaussians["means"]) @ rot.T + trans)
    if "log_scales" in gaussians:
        out["log_scales"] = like(gaussians["log_scales"], as_np(gaussians["log_scales"]) + np.log(s))
    if "quats" in gaussians:
        out["quats"] = like(gaussians["quats"], quat_multiply(rotation_to_quat(rot), as_np(gaussians["quats"])))
    if "sh" in gaussians and rotate_colour:
        out["sh"] = like(gaussians["sh"], rotate_sh(as_np(gaussians["sh"]), rot))
    return out
