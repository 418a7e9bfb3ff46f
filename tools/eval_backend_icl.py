"""ATE of the SLAM backend on an RGB-D sequence with the ``rgbd`` frontend, for three backend settings:
odometry only, + loop closure, + loop closure + global alignment.

The frontend runs once; its outputs are cached in memory and replayed into one backend per setting (the
frontend's ``pair`` is still called live for loop verification).

    python tools/eval_backend_icl.py ../shared/data/icl_livingroom1_micro [--max-frames N] [--stride S]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backends import BackendConfig, SlamBackend  # noqa: E402
from frontends import create  # noqa: E402
from slam.datasets import open_dataset  # noqa: E402
from slam.datasets.base import DatasetConfig  # noqa: E402
from slam.evaluation import evaluate  # noqa: E402
from slam.trajectory import Trajectory  # noqa: E402

SETTINGS = {"odometry only": "odometry", "+ loop closure": "loops", "+ loop closure + alignment": "full"}


def run(path: str, max_frames: int | None = None, stride: int = 1, sync: bool = True) -> list[dict]:
    """Run the three settings; return one row per setting with its ATE figures and backend metrics."""
    dataset = open_dataset(DatasetConfig(path=path, max_frames=max_frames, stride=stride))
    gt = dataset.ground_truth()
    frontend = create("rgbd")
    t0 = time.perf_counter()
    stream = [(frame, frontend.step(frame)) for frame in dataset]
    frontend_s = time.perf_counter() - t0
    rows = []
    for label, preset in SETTINGS.items():
        cfg = BackendConfig(preset=preset, sync=sync)
        backend = SlamBackend(cfg, frontend, metric=stream[0][1].metric)
        t0 = time.perf_counter()
        for frame, out in stream:
            backend.process(frame, out)
        backend.finalize()
        backend_s = time.perf_counter() - t0
        est = Trajectory(backend.timestamps(), backend.frame_poses())
        res = evaluate(est, gt)
        m = backend.metrics()
        backend.close()
        rows.append({"setting": label, "ate_se3_cm": 100 * res["ate_rmse_se3"], "ate_sim3_cm": 100 * res["ate_rmse_sim3"],
                     "keyframes": m["keyframes"], "loops": m["loops_accepted"], "backend_s": backend_s,
                     "frontend_s": frontend_s, "metrics": m})
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="TUM-layout RGB-D sequence folder")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--stride", type=int, default=1)
    args = parser.parse_args(argv)
    rows = run(args.path, args.max_frames, args.stride)
    print(f"frontend: {rows[0]['frontend_s']:.1f} s for the sequence")
    print(f"{'setting':<28} {'ATE SE(3) cm':>13} {'ATE Sim(3) cm':>14} {'keyframes':>10} {'loops':>6} {'backend s':>10}")
    for r in rows:
        print(f"{r['setting']:<28} {r['ate_se3_cm']:>13.2f} {r['ate_sim3_cm']:>14.2f} {r['keyframes']:>10} "
              f"{r['loops']:>6} {r['backend_s']:>10.1f}")
    return rows


if __name__ == "__main__":
    main()
