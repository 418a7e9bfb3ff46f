"""Small synthetic SLAM streams for the mapping tests: frames, frontend outputs and keyframes of a box room."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from slam.camera import scale_intrinsics
from slam.geometry import intrinsics_matrix
from slam.types import Frame, FrontendOutput, Keyframe

K_FULL = intrinsics_matrix(525.0, 525.0, 319.5, 239.5)  # for 480x640


def pose(yaw_deg: float = 0.0, t=(0.0, 0.0, 0.0), pitch_deg: float = 0.0) -> np.ndarray:
    """4x4 rigid T_wc with a yaw (about camera y) and pitch (about x), then translation ``t``."""
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("yx", [yaw_deg, pitch_deg], degrees=True).as_matrix()
    T[:3, 3] = t
    return T


def trajectory(n: int) -> np.ndarray:
    """(n,4,4) smooth camera path: slow turn along an arc that also rises a little."""
    return np.stack([pose(2.0 * k, (0.3 * np.sin(0.1 * k), 0.005 * k, 0.3 * (1 - np.cos(0.1 * k)))) for k in range(n)])


def depth_image(size=(480, 640), base: float = 2.0, seed: int = 0) -> np.ndarray:
    """(h,w) float32 metres: a slanted wall with a bump, 0 in a small invalid corner."""
    h, w = size
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    depth = base + 0.5 * u / w + 0.2 * np.exp(-(((u - w / 2) / (w / 8)) ** 2 + ((v - h / 2) / (h / 8)) ** 2))
    depth[: h // 10, : w // 10] = 0.0
    return depth.astype(np.float32)


def backproject(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(h,w,3) camera-frame points of a depth image (z = depth; invalid depth gives z = 0)."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    x = (u - K[0, 2]) / K[0, 0] * depth
    y = (v - K[1, 2]) / K[1, 1] * depth
    return np.stack([x, y, depth], axis=-1).astype(np.float32)


def colors(size, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, size=(*size, 3), dtype=np.uint8)


def frame_and_output(k: int, T_wc: np.ndarray, working=(120, 160), gt: np.ndarray | None = None,
                     stats: dict | None = None) -> tuple[Frame, FrontendOutput]:
    """A 640x480 RGB-D frame and an RGB-D-like frontend output at the (h, w) working size."""
    depth = depth_image()
    rgb = colors((480, 640), k)
    frame = Frame(index=k, timestamp=100.0 + k / 30.0, rgb=rgb, depth=depth, K=K_FULL, gt_pose=gt)
    K_w = scale_intrinsics(K_FULL, (480, 640), working)
    d_w = depth_image(working)
    conf = np.where(d_w > 0, 1.0 + (k % 5), 0.0).astype(np.float32)
    out = FrontendOutput(pose=T_wc, points=backproject(d_w, K_w), confidence=conf, K=K_w,
                         colors=colors(working, k), metric=True, stats=stats or {"update_weight_mean": 0.1 * k})
    return frame, out


def keyframe(kf_id: int, frame: Frame, out: FrontendOutput, T_wc: np.ndarray, stride: int = 2) -> Keyframe:
    """Keyframe from a frame/output, with the pointmap subsampled by ``stride`` (pixel u -> u / stride)."""
    K = np.asarray(out.K, dtype=np.float64).copy()
    K[:2] /= stride
    return Keyframe(id=kf_id, frame_index=frame.index, timestamp=frame.timestamp,
                    points=np.ascontiguousarray(out.points[::stride, ::stride]),
                    confidence=np.ascontiguousarray(out.confidence[::stride, ::stride]),
                    colors=np.ascontiguousarray(out.colors[::stride, ::stride]), K=K, pose=T_wc.copy(),
                    frontend_pose=T_wc.copy(), metric=True, frame=frame)
