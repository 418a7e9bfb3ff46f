"""Per-frame processing of the ``stream3r`` SLAM frontend.

Per frame (:meth:`Stream3rEngine.step`): the official preprocessing (:mod:`.preprocess`, width 518), one
streaming step of the network (:mod:`.session`), then a :class:`~slam.types.FrontendOutput` at the working
size (e.g. 518x392):

* ``pose``: camera-to-world ``T_wc`` = inverse of the camera-from-world extrinsic of ``pose_enc``; the world
  is the current segment's first camera (up to the network's estimate);
* ``K``: from the predicted fields of view (principal point at the image centre ``(W/2, H/2)``), or the
  frame's own ``K`` mapped to the working size when ``calibrated``;
* ``points``: camera-frame pointmap back-projected from the predicted ``depth`` with ``K``;
  ``confidence``: ``depth_conf`` (>= 1), values below ``conf_threshold`` set to 0 (invalid);
* ``segment``: increments whenever the session is cleared (``reset()`` or every ``reset_every`` frames);
* ``descriptor``: mean DINOv2 patch token, L2-normalised; ``stats``: ``ms``, ``fx``, ``fy``.

Outputs are up to scale (``metric=False``). The network reports no pose uncertainty (``pose_confidence`` 1).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from frontends.stream3r.cameras import intrinsics_from_pose_enc, pose_from_pose_enc
from frontends.stream3r.checkpoint import load_model
from frontends.stream3r.preprocess import preprocess_frame
from slam.errors import ConfigError
from slam.geometry import inverse_pose, transform_points
from slam.pointmaps import backproject_depth
from slam.types import Frame, FrontendOutput, PairEstimate

_AUTOCAST = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
#: session outputs read by ``step`` (``world_points`` is read by ``pair`` only)
_STEP_KEYS = ("pose_enc", "depth", "depth_conf", "descriptor")
_PAIR_KEYS = _STEP_KEYS + ("world_points", "world_points_conf")


def _transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """:func:`slam.geometry.transform_points` in float64, returned as float32."""
    return transform_points(T, points.astype(np.float64)).astype(np.float32)


class Stream3rEngine:
    """Network, streaming session and conversions behind :class:`~frontends.stream3r.slam_frontend.Stream3rFrontend`."""

    def __init__(self, config):
        if config.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"frontend.stream3r.device is {config.device!r} but CUDA is not available")
        self.config = config
        self.device = torch.device(config.device)
        self.net = load_model(config.checkpoint, device=self.device)
        self._autocast = _AUTOCAST[config.autocast]
        self.session = self._new_session(config.mode)
        self.segment = 0
        self._frames_in_segment = 0

    def _new_session(self, mode: str):
        return self.net.session(mode=mode, window=self.config.window, autocast_dtype=self._autocast,
                                descriptor=self.config.descriptor)

    def reset(self) -> None:
        """Clear the session; the next frame starts a new segment."""
        if self._frames_in_segment:
            self.session.reset()
            self.segment += 1
            self._frames_in_segment = 0

    def _run(self, session, frame: Frame, keys: tuple[str, ...] = _STEP_KEYS):
        """Preprocess and step one frame; only the outputs in ``keys`` are copied to the host."""
        pre = preprocess_frame(frame.rgb, self.config.width)
        out = session.step(pre.tensor.to(self.device))
        return pre, {k: out[k].detach().float().cpu() for k in keys if k in out}

    def _camera(self, frame: Frame, pre, out) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(T_wc, K, camera-frame points, depth confidence) of one processed frame."""
        pose_enc = out["pose_enc"][0, 0].numpy()
        if self.config.calibrated:
            if frame.K is None:
                raise ConfigError(f"frontend.stream3r.calibrated is true but frame {frame.index} "
                                  f"({frame.source or 'no source'}) has no intrinsics K")
            K = pre.transform.K_to_output(frame.K)
        else:
            K = intrinsics_from_pose_enc(pose_enc, pre.size)
        points = backproject_depth(out["depth"][0, 0, ..., 0].numpy(), K)
        conf = out["depth_conf"][0, 0].numpy().astype(np.float32, copy=True)
        return pose_from_pose_enc(pose_enc), K, points, conf

    def step(self, frame: Frame) -> FrontendOutput:
        start = time.perf_counter()
        if self.config.reset_every is not None and self._frames_in_segment >= self.config.reset_every:
            self.reset()
        pre, out = self._run(self.session, frame)
        self._frames_in_segment += 1
        pose, K, points, confidence = self._camera(frame, pre, out)
        confidence[~(confidence >= self.config.conf_threshold)] = 0.0  # NaN confidences are invalid too
        descriptor = out["descriptor"][0].numpy().astype(np.float32) if self.config.descriptor else None
        stats = {"fx": float(K[0, 0]), "fy": float(K[1, 1]), "ms": (time.perf_counter() - start) * 1e3}
        return FrontendOutput(pose=pose, points=points, confidence=confidence, K=K, segment=self.segment,
                              colors=pre.rgb, descriptor=descriptor, metric=False, stats=stats)

    def pair(self, a: Frame, b: Frame) -> PairEstimate:
        """Relative pose of ``b`` in ``a``'s camera frame from a fresh two-frame causal session.

        The streaming session is not touched. ``points_a``/``points_b``: both depth pointmaps in ``a``'s
        camera frame, ``conf_*`` their depth confidences. ``confidence``: mean over ``b``'s pixels of
        ``1 - 1/world_points_conf``. ``info['cross_residual']``: median distance between ``points_b`` and
        ``b``'s point-head prediction (moved to ``a``'s frame), relative to the median depth of ``points_a``.
        """
        start = time.perf_counter()
        session = self._new_session("causal")
        pre_a, out_a = self._run(session, a)
        pre_b, out_b = self._run(session, b, _PAIR_KEYS)
        if pre_a.size != pre_b.size:
            raise ValueError(f"pair(): frames {a.index} and {b.index} have different working sizes "
                             f"{pre_a.size} and {pre_b.size}")
        T_wa, _, points_a, conf_a = self._camera(a, pre_a, out_a)
        T_wb, _, points_b_cam, conf_b = self._camera(b, pre_b, out_b)
        T_aw = inverse_pose(T_wa)
        T_ab = T_aw @ T_wb
        points_b = _transform_points(T_ab, points_b_cam)
        cross_b = _transform_points(T_aw, out_b["world_points"][0, 0].numpy())
        conf_cross = out_b["world_points_conf"][0, 0].numpy().astype(np.float64)
        confidence = float(np.nan_to_num(np.mean(1.0 - 1.0 / np.maximum(conf_cross, 1.0))))
        scale = float(np.median(np.abs(points_a[..., 2]))) or 1.0
        residual = float(np.median(np.linalg.norm(points_b - cross_b, axis=-1))) / scale
        return PairEstimate(T_ab=T_ab, confidence=confidence, scale=1.0, sim3=False, points_a=points_a,
                            points_b=points_b, conf_a=conf_a, conf_b=conf_b,
                            info={"cross_residual": residual, "ms": (time.perf_counter() - start) * 1e3})

    def close(self) -> None:
        self.session = None
        self.net = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
