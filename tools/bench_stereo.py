#!/usr/bin/env python
"""Frames per second of the ``stereo`` frontend on a stereo sequence (KITTI or stereo folder).

Frames are read into memory first (image decoding is not timed), then streamed through one frontend. For
every frame the wall time and the process CPU time (``time.process_time``, all threads) of ``step`` are
recorded; the first ``--warmup`` frames are excluded. On a machine shared with other jobs wall time depends
on the load; the CPU time does not. While the process computes without waiting, its wall time is at most its
CPU time (summed over threads), so ``fps_from_cpu = frames / CPU seconds`` is a lower bound of the frame
rate on idle cores. The 1-minute load average (``os.getloadavg``) before and after is printed with the
result.

Example::

    python tools/bench_stereo.py ../shared/data/kitti_odometry_06_stereo/sequences/06 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="stereo sequence (KITTI sequence folder or stereo folder)")
    parser.add_argument("--frames", type=int, default=51)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="OpenCV threads (cores to use)")
    args = parser.parse_args(argv)

    import cv2

    import frontends
    from slam.datasets import DatasetConfig, open_dataset

    cv2.setNumThreads(args.threads)
    frames = list(open_dataset(DatasetConfig(path=args.data, max_frames=args.frames)))
    frontend = frontends.create("stereo")
    load_before = os.getloadavg()[0]
    wall, cpu = [], []
    for frame in frames:
        t, c = time.perf_counter(), time.process_time()
        frontend.step(frame)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    wall, cpu = wall[args.warmup:], cpu[args.warmup:]
    result = {
        "frames": len(wall), "size": f"{frames[0].rgb.shape[1]}x{frames[0].rgb.shape[0]}", "threads": args.threads,
        "wall_ms_median": round(1000 * statistics.median(wall), 1), "fps_wall": round(len(wall) / sum(wall), 2),
        "cpu_ms_median": round(1000 * statistics.median(cpu), 1),
        "fps_from_cpu": round(len(cpu) / sum(cpu), 2),
        "load_1min_before": round(load_before, 2), "load_1min_after": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    from slam.entry import tool_main

    sys.exit(tool_main(main))
