"""SLAM frontends ``cut3r``, ``ttt3r`` and ``ttsa3r``: one network, three state-update rules.

Per frame (:meth:`Cut3rFrontend.step`): the official preprocessing (:mod:`.preprocess`), one streaming
step of the network, then a :class:`~slam.types.FrontendOutput` at the *working size* (e.g. 512x384):

* ``pose``: camera-to-world ``T_wc`` from the pose head (``camera_pose = [t, q_wxyz]``) in the
  current segment's world frame (= the segment's first camera, up to the network's estimate);
* ``points``/``confidence``: ``pts3d_in_self_view`` (camera frame, OpenCV axes) and ``conf_self`` (>= 1;
  pixels below ``conf_threshold`` get 0 = invalid);
* ``colors``: the working-size input image (uint8); ``K``: Weiszfeld focal from the pointmap with the
  principal point at ``(W//2, H//2)`` as CUT3R's demo estimates it, or the frame's own ``K`` mapped to the
  working size when ``calibrated``;
* ``segment``: increments at every state reset (``reset()``, or every ``reset_every`` frames);
* ``descriptor``: L2-normalised mean encoder token (place recognition);
* ``stats``: ``update_weight_mean`` (state update weight averaged over tokens; 1 = full overwrite),
  ``ms`` (wall time of the step), ``focal``, and after a periodic reset ``overlap_pose``: ``T_wc`` of the same
  frame in the *next* segment's world, which links the two segments (TTT3R's overlap view).

Outputs are up to scale (``metric=False``); the scale is shared within a segment. The network reports no
pose uncertainty, so ``pose_confidence`` stays 1 (the backend's nominal odometry noise).

Importing this module registers the three frontends without importing torch; torch and the network load
when a frontend is constructed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from typing import TYPE_CHECKING

import numpy as np

from frontends.base import Frontend, register_frontend
from frontends.cut3r.focal import estimate_focal_weiszfeld, intrinsics_from_focal
from slam.errors import ConfigError
from slam.geometry import pose_from_tq, transform_points
from slam.types import Frame, FrontendOutput, PairEstimate

if TYPE_CHECKING:
    import torch

#: autocast option -> torch dtype name (torch is imported when a frontend is built, not on import)
_AUTOCAST = {"none": None, "bf16": "bfloat16", "fp16": "float16"}


@dataclass
class Cut3rFrontendConfig:
    """Options of the ``cut3r``/``ttt3r``/``ttsa3r`` frontends (config section ``frontend.cut3r``).

    Attributes:
        checkpoint: official ``.pth`` or converted ``.safetensors`` file (required).
        device: ``'cpu'`` or ``'cuda'`` (``'cuda:N'``).
        autocast: ``'none'``, ``'bf16'`` or ``'fp16'`` mixed precision for encoder and decoders; the heads
            and the committed state stay float32. ``'bf16'`` runs on CPU too (torch CPU autocast), so the
            mixed-precision path is exercised without a GPU; ``'fp16'`` needs CUDA.
        size: working size: 512 (long side) or 224 (short side, square crop); None = 512 for the DPT
            model, 224 for the linear model.
        reset_every: reset the recurrent state every N frames (TTT3R protocol), None = never.
        calibrated: use the frame's ``K`` (mapped to the working size) instead of estimating the focal.
        conf_threshold: confidences below this are set to 0 (invalid); ``conf_self`` is >= 1, so values
            <= 1 keep every pixel (CUT3R's demo shows points above 1.5).
        descriptor: compute the global descriptor.
        compile: run the network's per-view step through ``torch.compile`` (fused kernels; the first frames
            of each image size are slow while it compiles). The eager step is the reference.
        resample: ``'pil'`` (Pillow on the CPU, as the official code), ``'torch'`` (the same filters computed
            on ``device``; see :mod:`frontends.cut3r.preprocess`) or ``'auto'`` (``torch`` on CUDA, else ``pil``).
    """

    checkpoint: str | None = None
    device: str = "cpu"
    autocast: str = "none"
    size: int | None = None
    reset_every: int | None = None
    calibrated: bool = False
    conf_threshold: float = 0.0
    descriptor: bool = True
    resample: str = "auto"
    compile: bool = False

    def validate(self) -> None:
        """Raise ValueError for an invalid combination (the config loader names the section)."""
        if self.autocast not in _AUTOCAST:
            raise ValueError(f"autocast must be one of {sorted(_AUTOCAST)}, got {self.autocast!r}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        if self.autocast == "fp16" and not self.device.startswith("cuda"):
            raise ValueError(f"autocast='fp16' needs device 'cuda' (got {self.device!r}); on CPU use 'bf16'")
        if self.size is not None and (self.size < 16 or (self.size != 224 and self.size % 16)):
            raise ValueError(f"size must be 224 or a multiple of 16 (e.g. 512), got {self.size}")
        if self.reset_every is not None and self.reset_every < 1:
            raise ValueError(f"reset_every must be >= 1 or null, got {self.reset_every}")
        if self.resample not in ("pil", "torch", "auto"):
            raise ValueError(f"resample must be 'pil', 'torch' or 'auto', got {self.resample!r}")


def camera_pose_to_matrix(camera_pose: torch.Tensor | np.ndarray) -> np.ndarray:
    """``[tx,ty,tz,qw,qx,qy,qz]`` (camera-to-world, scalar-first quaternion) -> 4x4 float64 ``T_wc``.

    The quaternion need not be unit length: it is normalised (the network's pose head does not normalise it).
    """
    p = np.asarray(camera_pose, dtype=np.float64).reshape(7)
    return pose_from_tq(p[:3], p[[4, 5, 6, 3]])


def _transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    return transform_points(T, points.astype(np.float64)).astype(np.float32)


class Cut3rFrontend(Frontend):
    """Streaming CUT3R-family frontend; the subclass fixes the state-update rule (:attr:`update_rule`)."""

    update_rule = "cut3r"

    def __init__(self, config: Cut3rFrontendConfig):
        import torch

        try:
            config.validate()
        except ValueError as exc:
            raise ConfigError(f"frontend.cut3r: {exc}") from None
        if not config.checkpoint:
            raise ConfigError(f"frontend.cut3r.checkpoint is required for frontend '{self.update_rule}' "
                              "(path to an official .pth or a converted .safetensors)")
        if config.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"frontend.cut3r.device is {config.device!r} but CUDA is not available")
        from frontends.cut3r.checkpoint import load_model

        self.config = config
        self.net = load_model(config.checkpoint, device=config.device)
        self.size = config.size or (512 if self.net.cfg.head_type == "dpt" else 224)
        dtype = _AUTOCAST[config.autocast]
        self._autocast = getattr(torch, dtype) if dtype else None
        self.session = self._new_session(config.reset_every)

    def _new_session(self, reset_every: int | None = None):
        return self.net.session(update=self.update_rule, reset_every=reset_every, autocast_dtype=self._autocast,
                                compile_step=self.config.compile)

    # ------------------------------------------------------------------ Frontend API
    def reset(self) -> None:
        """Forget the recurrent state; the next frame starts a new segment."""
        self.session.reset()

    @property
    def segment(self) -> int:
        return int(self.session.segment)

    def step(self, frame: Frame) -> FrontendOutput:
        start = time.perf_counter()
        pre = self._preprocess(frame)
        out = self.session.step(pre.tensor)
        pose = camera_pose_to_matrix(out["camera_pose"][0])
        points = out["pts3d_in_self_view"][0].numpy().astype(np.float32, copy=False)
        confidence = out["conf_self"][0].numpy().astype(np.float32, copy=True)
        confidence[~(confidence >= self.config.conf_threshold)] = 0.0  # NaN confidences are invalid too
        K, focal = self._intrinsics(frame, pre.transform, points)
        stats: dict[str, Any] = {
            "update_weight_mean": float(out["update_weight"].float().mean()),
            "focal": focal,
        }
        if "overlap" in out:
            stats["overlap_pose"] = camera_pose_to_matrix(out["overlap"]["camera_pose"][0])
        descriptor = out["descriptor"][0].numpy().astype(np.float32) if self.config.descriptor else None
        stats["ms"] = (time.perf_counter() - start) * 1e3
        return FrontendOutput(pose=pose, points=points, confidence=confidence, K=K, segment=int(out["segment"]),
                              colors=pre.rgb, descriptor=descriptor, metric=False, stats=stats)

    def pair(self, a: Frame, b: Frame) -> PairEstimate:
        """Relative pose of ``b`` in ``a``'s camera frame from a fresh two-view session.

        The streaming session is not touched. ``points_a`` is ``a``'s self-view pointmap, ``points_b`` is
        ``b``'s self-view pointmap moved into ``a``'s camera frame with ``T_ab``; ``conf_*`` are their
        ``conf_self``. ``confidence`` is the mean over ``b``'s pixels of ``1 - 1/conf`` of the cross-view
        confidence (how sure the network is about ``b`` in ``a``'s world). ``info['cross_residual']`` is
        the median distance between ``points_b`` and ``b``'s cross-view prediction (moved to ``a``'s frame),
        relative to the median depth of ``points_a``: a cheap consistency check (small is good).
        """
        start = time.perf_counter()
        session = self._new_session(None)
        pre_a, pre_b = self._preprocess(a), self._preprocess(b)
        if pre_a.size != pre_b.size:
            raise ValueError(f"pair(): frames {a.index} and {b.index} have different working sizes "
                             f"{pre_a.size} and {pre_b.size}")
        out_a = session.step(pre_a.tensor)
        out_b = session.step(pre_b.tensor)
        T_wa = camera_pose_to_matrix(out_a["camera_pose"][0])
        T_wb = camera_pose_to_matrix(out_b["camera_pose"][0])
        T_aw = np.linalg.inv(T_wa)
        T_ab = T_aw @ T_wb
        points_a = out_a["pts3d_in_self_view"][0].numpy().astype(np.float32)
        points_b = _transform_points(T_ab, out_b["pts3d_in_self_view"][0].numpy())
        cross_b = _transform_points(T_aw, out_b["pts3d_in_other_view"][0].numpy())
        conf_cross = out_b["conf"][0].numpy().astype(np.float64)
        confidence = float(np.nan_to_num(np.mean(1.0 - 1.0 / np.maximum(conf_cross, 1.0))))
        scale = float(np.median(np.abs(points_a[..., 2]))) or 1.0
        residual = float(np.median(np.linalg.norm(points_b - cross_b, axis=-1))) / scale
        return PairEstimate(
            T_ab=T_ab, confidence=confidence, scale=1.0, sim3=False,
            points_a=points_a, points_b=points_b,
            conf_a=out_a["conf_self"][0].numpy().astype(np.float32),
            conf_b=out_b["conf_self"][0].numpy().astype(np.float32),
            info={"cross_residual": residual, "ms": (time.perf_counter() - start) * 1e3},
        )

    def close(self) -> None:
        self.session = None
        self.net = None
        if self.config.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    # ------------------------------------------------------------------ helpers
    def _preprocess(self, frame: Frame):
        from frontends.cut3r.preprocess import preprocess_frame

        return preprocess_frame(frame.rgb, self.size, self.config.resample, device=self.net.device)

    def _intrinsics(self, frame: Frame, transform, points: np.ndarray) -> tuple[np.ndarray, float]:
        if self.config.calibrated:
            if frame.K is None:
                raise ConfigError(f"frontend.cut3r.calibrated is true but frame {frame.index} "
                                  f"({frame.source or 'no source'}) has no intrinsics K")
            K = transform.K_to_output(frame.K)
            return K, float(K[0, 0])
        focal = estimate_focal_weiszfeld(points)
        return intrinsics_from_focal(focal, points.shape[:2]), focal


@register_frontend("cut3r", Cut3rFrontendConfig, section="cut3r")
class Cut3rStreamFrontend(Cut3rFrontend):
    """CUT3R: the state is overwritten by the decoder's candidate at every frame."""

    update_rule = "cut3r"


@register_frontend("ttt3r", Cut3rFrontendConfig, section="cut3r")
class Ttt3rFrontend(Cut3rFrontend):
    """TTT3R: per-token update weight from the state decoder's cross-attention logits."""

    update_rule = "ttt3r"


@register_frontend("ttsa3r", Cut3rFrontendConfig, section="cut3r")
class Ttsa3rFrontend(Cut3rFrontend):
    """TTSA3R: temporal x spatial update gate."""

    update_rule = "ttsa3r"

