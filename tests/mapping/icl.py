"""Keyframes built from a few frames of the ICL sequence (sensor depth, reference poses)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slam.datasets import DatasetConfig, open_dataset
from slam.types import Keyframe
from tests.mapping.synthetic import backproject


def icl_keyframes(icl_dir: Path, stride: int = 30, max_frames: int = 6, point_stride: int = 4) -> list[Keyframe]:
    """Metric keyframes of every ``stride``-th ICL frame with the reference pose and the frame kept."""
    ds = open_dataset(DatasetConfig(kind="tum", path=str(icl_dir), stride=stride, max_frames=max_frames))
    kfs = []
    for i, frame in enumerate(ds):
        K = frame.K.copy()
        K[:2] /= point_stride  # pixel u of the subsampled grid is pixel u * stride of the image
        depth = frame.depth[::point_stride, ::point_stride]
        kfs.append(Keyframe(id=i, frame_index=frame.index, timestamp=frame.timestamp,
                            points=backproject(depth, K), confidence=(depth > 0).astype(np.float32),
                            colors=np.ascontiguousarray(frame.rgb[::point_stride, ::point_stride]), K=K,
                            pose=frame.gt_pose.copy(), frontend_pose=frame.gt_pose.copy(), metric=True, frame=frame))
    return kfs
