"""Synthetic data for backend tests: a textured box room, ray-cast pointmaps, a looping camera path, and a
fake frontend (exact or drifting odometry; pair estimates from ground truth).

All poses are camera-to-world ``T_wc`` (OpenCV axes); pointmaps are in the camera frame.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from slam.types import Frame, FrontendOutput, PairEstimate

ROOM_MIN = np.array([-4.0, -1.5, -4.0])
ROOM_MAX = np.array([4.0, 1.5, 4.0])
#: solid boxes (min corner, max corner) inside the room, so that geometry is not just planes
BOXES = [
    (np.array([2.6, -1.5, -0.6]), np.array([3.2, 0.2, 0.3])),
    (np.array([-0.5, -1.5, 2.7]), np.array([0.8, -0.4, 3.3])),
    (np.array([-3.3, -0.3, -1.8]), np.array([-2.5, 0.6, -0.4])),
    (np.array([0.7, 0.5, -3.4]), np.array([1.6, 1.5, -2.7])),
    (np.array([-2.0, -1.5, -3.6]), np.array([-1.4, 1.5, -3.0])),
]


def intrinsics(h: int = 48, w: int = 64) -> np.ndarray:
    f = 0.8 * w
    return np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])


def render(T_wc: np.ndarray, K: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast the inside of the box room: (h, w, 3) camera-frame points and (h, w, 3) uint8 colours."""
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays_c = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    R, o = T_wc[:3, :3], T_wc[:3, 3]
    d = rays_c @ R.T
    with np.errstate(divide="ignore", invalid="ignore"):
        t_hi = np.where(d > 0, (ROOM_MAX - o) / d, np.where(d < 0, (ROOM_MIN - o) / d, np.inf))
    t = t_hi.min(-1)
    for lo, hi in BOXES:
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (lo - o) / d, (hi - o) / d
        t_near = np.nanmax(np.minimum(t1, t2), -1)
        t_far = np.nanmin(np.maximum(t1, t2), -1)
        hit = (t_near < t_far) & (t_near > 0)
        t = np.where(hit & (t_near < t), t_near, t)
    pts_w = o + d * t[..., None]
    pts_c = rays_c * t[..., None]  # z = t because rays have unit z
    colors = _texture(pts_w)
    return pts_c.astype(np.float32), colors


def _texture(p: np.ndarray) -> np.ndarray:
    a = np.sin(3.1 * p[..., 0] + 1.3 * p[..., 1]) + np.sin(2.3 * p[..., 2] - 0.7 * p[..., 1])
    b = np.cos(1.7 * p[..., 0] * p[..., 2] / 4.0) + 0.5 * np.sin(5.0 * p[..., 1])
    c = np.floor(p[..., 0]) + 2 * np.floor(p[..., 2]) + 3 * np.floor(p[..., 1])
    rgb = np.stack([a, b, np.sin(c)], -1)
    return np.clip(127.5 + 60.0 * rgb, 0, 255).astype(np.uint8)


def loop_trajectory(n: int, radius: float = 1.5, turns: float = 1.0) -> np.ndarray:
    """(n, 4, 4) poses on a horizontal circle looking outwards, ending where it started after ``turns``."""
    poses = []
    for i in range(n):
        a = 2 * np.pi * turns * i / n
        yaw = Rotation.from_euler("y", -a)  # camera z axis rotates with the angle
        T = np.eye(4)
        T[:3, :3] = yaw.as_matrix()
        T[:3, 3] = [radius * np.sin(a), 0.1 * np.sin(3 * a), radius * np.cos(a)]
        poses.append(T)
    return np.stack(poses)


def make_frames(poses: np.ndarray, h: int = 48, w: int = 64) -> list[Frame]:
    K = intrinsics(h, w)
    frames = []
    for i, T in enumerate(poses):
        pts, col = render(T, K, h, w)
        frames.append(Frame(index=i, timestamp=float(i) / 10, rgb=col, depth=pts[..., 2].copy(), K=K,
                            gt_pose=T.copy()))
    return frames


def drift_transform(rot_deg: float, scale: float) -> np.ndarray:
    """Per-frame odometry error: a small yaw/roll rotation and a translation scale factor."""
    E = np.eye(4)
    E[:3, :3] = Rotation.from_euler("yx", [rot_deg, 0.3 * rot_deg], degrees=True).as_matrix()
    E[3, 3] = 1.0 / scale  # marker only; applied explicitly below
    return E


class FakeFrontend:
    """Frontend fed by ground truth: odometry optionally corrupted by a per-frame drift.

    Each frame's relative motion is the true one with a rotation error of ``drift_rot_deg`` and its
    translation scaled by ``drift_scale``; errors accumulate. ``pair`` returns the true relative pose
    (optionally a wrong one for the pairs listed in ``wrong_pairs``). Outputs are metric unless
    ``metric=False``. Duck-typed like :class:`frontends.base.Frontend` (the backend only calls ``pair``).
    """

    name = "fake"

    def __init__(self, drift_rot_deg: float = 0.0, drift_scale: float = 1.0, metric: bool = True,
                 reset_every: int = 0, with_descriptor: bool = False):
        self.drift_rot_deg = drift_rot_deg
        self.drift_scale = drift_scale
        self.metric = metric
        self.reset_every = reset_every
        self.with_descriptor = with_descriptor
        self.pair_calls = 0
        self.reset()

    def reset(self) -> None:
        self._prev_gt = None
        self._pose = None
        self.segment = getattr(self, "segment", -1) + 1
        self._n = 0

    def step(self, frame: Frame) -> FrontendOutput:
        if self.reset_every and self._n >= self.reset_every:
            self.reset()
        if self._pose is None:
            self._pose = np.eye(4)  # every segment starts its own world at the identity
        else:
            rel = np.linalg.inv(self._prev_gt) @ frame.gt_pose
            err = Rotation.from_euler("yx", [self.drift_rot_deg, 0.3 * self.drift_rot_deg], degrees=True)
            rel = rel.copy()
            rel[:3, :3] = err.as_matrix() @ rel[:3, :3]
            rel[:3, 3] *= self.drift_scale
            self._pose = self._pose @ rel
        self._prev_gt = frame.gt_pose
        self._n += 1
        pts = frame.depth[..., None] * _rays(frame.K, *frame.depth.shape)
        desc = None
        if self.with_descriptor:
            g = frame.rgb.astype(np.float32).mean(-1)[::4, ::4].ravel()
            g = g - g.mean()
            desc = (g / (np.linalg.norm(g) + 1e-9)).astype(np.float32)
        return FrontendOutput(pose=self._pose.copy(), points=pts.astype(np.float32),
                              confidence=np.ones(frame.depth.shape, np.float32), K=frame.K,
                              segment=self.segment, colors=frame.rgb, descriptor=desc, metric=self.metric)

    def pair(self, a: Frame, b: Frame) -> PairEstimate:
        self.pair_calls += 1
        T_ab = np.linalg.inv(a.gt_pose) @ b.gt_pose
        return PairEstimate(T_ab=T_ab, confidence=0.9)


def _rays(K: np.ndarray, h: int, w: int) -> np.ndarray:
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)


def ate(est: np.ndarray, gt: np.ndarray, with_scale: bool = False) -> float:
    """ATE RMSE of (N, 4, 4) poses after the best SE(3) (or Sim(3)) alignment of positions."""
    from evo.core.geometry import umeyama_alignment

    p, q = est[:, :3, 3], gt[:, :3, 3]
    R, t, s = umeyama_alignment(p.T, q.T, with_scale)
    d = s * p @ R.T + t - q
    return float(np.sqrt(np.mean(np.sum(d**2, axis=1))))


def run_backend(cfg, frontend, frames, metric: bool = True):
    """Stream frames through ``frontend`` and a SlamBackend; returns the finalised backend."""
    from backends import SlamBackend

    backend = SlamBackend(cfg, frontend, metric=metric)
    for f in frames:
        backend.process(f, frontend.step(f))
    backend.finalize()
    backend.close()
    return backend
