#!/usr/bin/env python
"""Frames per second of a default ``slam run`` on a real RGB-D sequence (the per-frame path, backend async).

Runs the real pipeline (``slam.pipeline.run``) with the default configuration plus any ``key=value``
overrides and records the start time of every ``frontend.step`` call: the time between two consecutive
starts is one whole iteration of the per-frame loop (reading and decoding the frame, frontend, backend
keyframe test and hand-over, sinks). Reported: the median of those periods as frames/s, the mean process
CPU time per frame (all threads, includes the backend worker), and ``uptime`` before and after (on a shared
machine the wall-clock figure is pessimistic when the load exceeds the core count)::

    python tools/bench_rgbd_speed.py ../shared/data/sevenscenes_redkitchen_stride4 [--threads 2] [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="TUM-layout RGB-D sequence")
    parser.add_argument("overrides", nargs="*", help="configuration overrides, e.g. backend.sync=true")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for Open3D/OpenMP (default 2)")
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import numpy as np

    import frontends
    from slam.config import load_run_config
    from slam.pipeline import run

    starts: list[float] = []
    create = frontends.create

    def timed_create(*a, **kw):
        fe = create(*a, **kw)
        step = fe.step

        def timed_step(frame):
            starts.append(time.perf_counter())
            return step(frame)

        fe.step = timed_step
        return fe

    frontends.create = timed_create
    load_before = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    with tempfile.TemporaryDirectory() as out:
        cfg = load_run_config(data=args.data, out=out, overrides=["frontend=rgbd", *args.overrides])
        cpu0 = time.process_time()
        result = run(cfg, progress=False)
        cpu = time.process_time() - cpu0
    load_after = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    periods = np.diff(starts)
    report = {"frames": result.n_frames, "median_fps": round(1.0 / float(np.median(periods)), 2),
              "mean_fps": round(len(periods) / float(periods.sum()), 2),
              "cpu_ms_per_frame": round(1000 * cpu / max(result.n_frames, 1), 1),
              "ate_se3_cm": round(100 * result.metrics.get("ate_rmse_se3", float("nan")), 2),
              "uptime_before": load_before, "uptime_after": load_after}
    for key, value in report.items():
        print(f"{key}: {value}")
    return report


if __name__ == "__main__":
    from slam.entry import tool_main

    sys.exit(tool_main(main))
