"""Core data types that flow through the pipeline (dataset -> frontend -> keyframes -> backend -> map) and the
interfaces between the stages (:class:`PairEstimator`, :class:`Backend`).

Conventions (everywhere): OpenCV camera axes (x right, y down, z forward); poses are camera-to-world
``T_wc`` 4x4 float64 matrices in metres (or in the frontend's arbitrary scale for monocular learned
frontends); images are ``uint8`` HxWx3 RGB at the dataset boundary; timestamps in seconds; intrinsics
``K`` always belong to the image size stored next to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One frame as yielded by a dataset.

    Attributes:
        index: position in the (strided, cut) stream, 0-based.
        timestamp: seconds.
        rgb: HxWx3 uint8 RGB image.
        depth: HxW float32 depth in metres aligned with ``rgb`` (0 = invalid), or None.
        K: 3x3 pinhole intrinsics for the ``rgb`` size, or None if unknown.
        gt_pose: 4x4 camera-to-world ground-truth pose, or None.
        source: where the frame came from (file path), for error messages.
        right: HxWx3 uint8 RGB image of the right camera of a rectified stereo pair (same size, same ``K``,
            rows aligned with ``rgb``; a point at depth z metres appears ``K[0,0] * baseline / z`` pixels
            further left in it), or None for monocular / RGB-D frames.
        baseline: stereo baseline in metres (right camera centre at ``+baseline`` along the left camera's
            x axis), or None without ``right``.
    """

    index: int
    timestamp: float
    rgb: np.ndarray
    depth: np.ndarray | None = None
    K: np.ndarray | None = None
    gt_pose: np.ndarray | None = None
    source: str = ""
    right: np.ndarray | None = None
    baseline: float | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the image in pixels."""
        return int(self.rgb.shape[0]), int(self.rgb.shape[1])


@dataclass
class FrontendOutput:
    """What a frontend yields for one frame.

    Attributes:
        pose: 4x4 ``T_wc`` in the frontend's own world frame of the current ``segment``.
        points: hxwx3 float32 pointmap in the *camera* frame at the frontend's working size (h, w).
        confidence: hxw float32, higher is better (0 = invalid).
        K: 3x3 intrinsics at the working size (given or estimated).
        segment: increments whenever the frontend resets its state (its world frame changes).
        colors: hxwx3 uint8 colours at the working size, aligned with ``points``.
        descriptor: 1-D float32 L2-normalised global descriptor for place recognition, or None.
        metric: True when ``pose``/``points`` are in metres (e.g. RGB-D), False for up-to-scale.
        pose_confidence: trust in this frame's pose relative to the previous frame's, in (0, 1] (1 =
            nominal). The backend divides the noise of an odometry edge by the lowest value among the
            frames it spans.
        stats: diagnostics, e.g. ``update_weight_mean`` or timings in ms.
    """

    pose: np.ndarray
    points: np.ndarray
    confidence: np.ndarray
    K: np.ndarray
    segment: int = 0
    colors: np.ndarray | None = None
    descriptor: np.ndarray | None = None
    metric: bool = False
    pose_confidence: float = 1.0
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def working_size(self) -> tuple[int, int]:
        """(h, w) of the pointmap."""
        return int(self.points.shape[0]), int(self.points.shape[1])


@dataclass
class PairEstimate:
    """Relative pose between two frames estimated from scratch (fresh frontend state).

    Attributes:
        T_ab: 4x4 pose of camera b expressed in camera a's frame (maps b-camera points to a-camera).
        scale: similarity scale of b relative to a (1.0 for metric frontends); ``T_ab`` already includes
            it in its rotation block only if ``sim3`` is True.
        confidence: scalar in [0, 1], how much to trust the estimate.
        points_a, points_b: optional hxwx3 pointmaps of both frames in camera a's frame, with their
            confidences ``conf_a``/``conf_b`` (for geometric verification).
        info: free-form diagnostics (fitness, inlier RMSE ...).
    """

    T_ab: np.ndarray
    confidence: float
    scale: float = 1.0
    sim3: bool = False
    points_a: np.ndarray | None = None
    points_b: np.ndarray | None = None
    conf_a: np.ndarray | None = None
    conf_b: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Keyframe:
    """A keyframe as stored by the backend and the map.

    Attributes:
        id: keyframe id (0, 1, ...), in creation order.
        frame_index: index of the frame it was made from.
        timestamp: seconds.
        points: mxnx3 float32 downsampled pointmap in the keyframe's camera frame.
        confidence: mxn float32.
        colors: mxnx3 uint8.
        K: 3x3 intrinsics for the (m, n) size of ``points``.
        pose: 4x4 current optimised ``T_wc`` (world of the backend).
        frontend_pose: 4x4 pose reported by the frontend (in its segment's world frame).
        segment: frontend segment the keyframe belongs to.
        descriptor: global descriptor for retrieval, or None.
        metric: whether points are in metres.
        frame: the original frame (kept for pair estimates; may be dropped to save memory).
    """

    id: int
    frame_index: int
    timestamp: float
    points: np.ndarray
    confidence: np.ndarray
    colors: np.ndarray
    K: np.ndarray
    pose: np.ndarray
    frontend_pose: np.ndarray
    segment: int = 0
    descriptor: np.ndarray | None = None
    metric: bool = False
    frame: Frame | None = None


@dataclass
class LoopEdge:
    """An accepted loop closure between two keyframes (ids), for display and ``loops.json``."""

    kf_a: int
    kf_b: int
    score: float = 0.0


@dataclass
class FrameResult:
    """What the backend returns for one frame.

    Attributes:
        pose: 4x4 rigid ``T_wc`` of the frame in the backend world (best current estimate).
        keyframe: the keyframe made from this frame, or None.
    """

    pose: np.ndarray
    keyframe: Keyframe | None = None


@runtime_checkable
class PairEstimator(Protocol):
    """What a backend asks of the frontend (a :class:`frontends.base.Frontend` is one): relative poses of
    two frames from scratch (segment links, loop verification), optionally refined densely."""

    def pair(self, a: Frame, b: Frame) -> PairEstimate: ...

    def refine_pair(self, a: Frame, b: Frame, T_ab: np.ndarray) -> PairEstimate | None: ...


@runtime_checkable
class Backend(Protocol):
    """The backend as the pipeline uses it. Poses are rigid camera-to-world ``T_wc`` 4x4 in the backend world.

    The pipeline calls :meth:`process` per frame (cheap: never optimises), :meth:`poll` after it and, when
    it is True, :meth:`keyframes`/:meth:`loops` for the sinks; at the end :meth:`finalize`, then
    :meth:`frame_poses`, :meth:`write_outputs`, :meth:`metrics`, and always :meth:`close`.
    """

    def process(self, frame: Frame, output: FrontendOutput) -> FrameResult:
        """Keyframe decision and this frame's pose."""
        ...

    def poll(self) -> bool:
        """True when keyframe poses changed since the last call."""
        ...

    def keyframes(self) -> list[Keyframe]:
        """All keyframes with their current poses (points scaled to the backend world)."""
        ...

    def loops(self) -> list[LoopEdge]:
        """Accepted loop closures."""
        ...

    def frame_poses(self) -> np.ndarray:
        """(N, 4, 4) ``T_wc`` of every processed frame."""
        ...

    def finalize(self) -> None:
        """Final optimisation (blocking)."""
        ...

    def write_outputs(self, out_dir: Path) -> None:
        """Write the backend's own files (``keyframes.tum``, ``loops.json``) into ``out_dir``."""
        ...

    def metrics(self) -> dict[str, Any]:
        """JSON-ready figures for ``metrics.json``."""
        ...

    def close(self) -> None:
        """Stop threads and release resources."""
        ...
