"""A video file read with OpenCV, decoded lazily one frame at a time.

* Length: the container's frame count (``CAP_PROP_FRAME_COUNT``); when it reports none, the frames
  are counted once by grabbing through the file. If decoding ends before the reported count, iteration
  stops early with a warning.
* Time stamps: the container's (``CAP_PROP_POS_MSEC`` of each grabbed frame); if they stop increasing
  (some backends report 0), ``index / fps`` is used from then on (fps from the container, else 30).
* Skipped frames (first, stride) are grabbed without being decoded to RGB.
* Intrinsics: ``intrinsics`` from the config, else unknown (``Frame.K`` None).
"""

from __future__ import annotations

import logging
from typing import Iterator

import cv2
import numpy as np

from slam.datasets.base import Dataset, DatasetConfig, frame_selection, register_dataset, resolve_path
from slam.datasets.io import intrinsics_from_list
from slam.errors import DatasetError
from slam.types import Frame

log = logging.getLogger(__name__)

DEFAULT_VIDEO_FPS = 30.0


@register_dataset("video")
class VideoDataset(Dataset):
    """Frames of a video file; see the module docstring."""

    def __init__(self, cfg: DatasetConfig):
        self.cfg = cfg
        self.path = path = resolve_path(cfg.path)
        if not path.is_file():
            raise DatasetError("video file not found", path)
        capture = self._open()
        try:
            fps = capture.get(cv2.CAP_PROP_FPS)
            self.fps = fps if np.isfinite(fps) and fps > 0 else DEFAULT_VIDEO_FPS
            n = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            if n <= 0:
                n = 0
                while capture.grab():
                    n += 1
        finally:
            capture.release()
        if n == 0:
            raise DatasetError("video has no frames", path)
        self.n_total = n
        self.K = None if cfg.intrinsics is None else intrinsics_from_list(cfg.intrinsics, "dataset.intrinsics")
        self._selected = frame_selection(n, cfg)

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise DatasetError("cannot open video (corrupt file or unsupported codec)", self.path)
        return capture

    def __len__(self) -> int:
        return len(self._selected)

    def __iter__(self) -> Iterator[Frame]:
        if not self._selected:
            return
        wanted = set(self._selected)
        capture = self._open()
        use_container_time, last_msec = True, -1.0
        index = 0
        try:
            for frame_number in range(self._selected[-1] + 1):
                if not capture.grab():
                    log.warning("%s: decoding ended at frame %d of %d", self.path, frame_number, self.n_total)
                    return
                msec = capture.get(cv2.CAP_PROP_POS_MSEC)
                if use_container_time and (not np.isfinite(msec) or (frame_number > 0 and msec <= last_msec)):
                    use_container_time = False
                    log.warning("%s: container time stamps unusable, using index / %g fps", self.path, self.fps)
                last_msec = msec
                if frame_number not in wanted:
                    continue
                ok, bgr = capture.retrieve()
                if not ok or bgr is None:
                    raise DatasetError(f"cannot decode frame {frame_number}", self.path)
                if bgr.ndim == 2:
                    bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
                stamp = msec / 1000.0 if use_container_time else frame_number / self.fps
                yield Frame(
                    index=index,
                    timestamp=float(stamp),
                    rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                    K=None if self.K is None else self.K.copy(),
                    source=f"{self.path}#{frame_number}",
                )
                index += 1
        finally:
            capture.release()
