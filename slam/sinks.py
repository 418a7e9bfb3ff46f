"""Sinks: everything that observes a run (Rerun viewer, map fusion, files) without feeding back into it.

The pipeline calls these hooks in order: ``start`` once, ``on_frame`` per frame, ``on_keyframes``
whenever the backend has new keyframe poses (after each optimisation, loop closure, global alignment),
``finish`` once with the final per-frame trajectory, and ``close`` always (also on error / Ctrl-C).
A sink must never stop the run: failures are logged and the sink disables itself.
"""

from __future__ import annotations

from abc import ABC
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from slam.types import Frame, FrontendOutput, Keyframe, LoopEdge


@dataclass
class RunInfo:
    """Static facts about a run, given to :meth:`Sink.start`.

    Attributes:
        out_dir: output folder.
        n_frames: frames the dataset will stream.
        frontend: registered frontend name.
        metric: True when the frontend's scale is metric (RGB-D).
        gt_poses: (N,4,4) ground-truth ``T_wc`` per streamed frame (NaN where unknown), or None.
        timestamps: (N,) seconds per streamed frame, or None if unknown up front.
    """

    out_dir: str
    n_frames: int
    frontend: str
    metric: bool = False
    gt_poses: np.ndarray | None = None
    timestamps: np.ndarray | None = None


@dataclass
class FrameEvent:
    """One processed frame.

    Attributes:
        frame: the input frame.
        output: the frontend's output.
        pose: 4x4 ``T_wc`` of this frame in the backend's world frame (best current estimate).
        keyframe_id: id of the keyframe made from this frame, or None.
        fps: smoothed frames per second of the whole per-frame path.
        metrics: scalars for time series (e.g. ``ate_live``, ``keyframes``, ``loops``).
    """

    frame: Frame
    output: FrontendOutput
    pose: np.ndarray
    keyframe_id: int | None = None
    fps: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)


class Sink(ABC):
    """Observer of a run. All hooks are optional."""

    def start(self, info: RunInfo) -> None:  # noqa: B027
        pass

    def on_frame(self, event: FrameEvent) -> None:  # noqa: B027
        pass

    def on_keyframes(self, keyframes: Sequence[Keyframe], loops: Sequence[LoopEdge]) -> None:  # noqa: B027
        """Keyframe poses (``Keyframe.pose``) changed or keyframes were added."""

    def finish(self, timestamps: np.ndarray, poses: np.ndarray, metrics: dict[str, Any]) -> None:  # noqa: B027
        """Final per-frame trajectory (N,), (N,4,4) and the run's metrics."""

    def close(self) -> None:  # noqa: B027
        pass

