#!/usr/bin/env python
"""The real-data table: every RGB-D sequence of the shared data folder x {plain Open3D frame-to-frame
odometry, our odometry, our loops, our full system}, written to ``docs/real_data_table.md`` (discussed in
``docs/real_data.md``).

Columns: ATE RMSE after SE(3) and Sim(3) alignment (cm), RPE RMSE between consecutive frames (translation,
cm, Sim(3)-aligned; see :mod:`slam.evaluation`) and frames per second of the per-frame path (median over
the sequence of 1 / per-frame time).

* ``Open3D f2f``: each frame aligned to the previous one with Open3D's classic RGB-D odometry (hybrid term,
  default options: depth cut at 4 m, full resolution), poses chained: the baseline of the data READMEs,
  which it reproduces (ICL 2.03 / 1.70 cm, 7-Scenes 18.83 / 18.12 cm). Its frames/s is that of the
  odometry call alone.
* ``ours: odometry / loops / full``: ``slam run --data SEQ`` with the default configuration and
  ``backend=odometry|loops|full``, evaluated by ``tools/eval_backend_icl.py`` (the frontend runs once and is
  replayed into each backend, synchronously). Frames/s is the frontend's per-frame rate; the backend runs off
  the per-frame path in a normal run.

A sequence is an RGB-D sequence when its folder has a ``depth.txt`` (TUM layout). Speed figures depend on
the machine's load: the table records ``uptime`` at the start and the end. Usage::

    python tools/real_data_table.py [--data ../shared/data] [--out docs/real_data_table.md] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

def rgbd_sequences(data: Path) -> list[Path]:
    """Folders directly under ``data`` in TUM layout with depth (``rgb.txt`` and ``depth.txt``), sorted."""
    return sorted(p for p in data.iterdir() if (p / "rgb.txt").is_file() and (p / "depth.txt").is_file())


def open3d_f2f(path: Path, max_frames: int | None = None) -> dict:
    """Plain frame-to-frame Open3D RGB-D odometry, poses chained: figures.

    Open3D's classic ``pipelines.odometry.compute_rgbd_odometry`` with the hybrid (photometric +
    geometric) Jacobian and its default ``OdometryOption`` (pyramid iterations 20/10/5, depth 0-4 m, depth
    difference 3 cm), at full resolution, colour converted to intensity. This is the baseline the data
    folders' READMEs state; a failed step keeps the previous pose.
    """
    import open3d as o3d

    from slam.datasets import open_dataset
    from slam.datasets.base import DatasetConfig
    from slam.evaluation import evaluate
    from slam.trajectory import Trajectory

    odo = o3d.pipelines.odometry
    dataset = open_dataset(DatasetConfig(path=str(path), max_frames=max_frames))
    poses, stamps, step_s, prev = [np.eye(4)], [], [], None
    for frame in dataset:
        stamps.append(frame.timestamp)
        h, w = frame.depth.shape
        K = frame.K
        intrinsic = o3d.camera.PinholeCameraIntrinsic(w, h, K[0, 0], K[1, 1], K[0, 2], K[1, 2])
        image = o3d.geometry.RGBDImage.create_from_color_and_depth(
            o3d.geometry.Image(np.ascontiguousarray(frame.rgb)), o3d.geometry.Image(frame.depth.astype(np.float32)),
            depth_scale=1.0, depth_trunc=np.inf, convert_rgb_to_intensity=True)
        if prev is not None:
            t0 = time.perf_counter()
            ok, T, _ = odo.compute_rgbd_odometry(image, prev, intrinsic, np.eye(4),
                                                 odo.RGBDOdometryJacobianFromHybridTerm(), odo.OdometryOption())
            step_s.append(time.perf_counter() - t0)
            poses.append(poses[-1] @ (T if ok else np.eye(4)))  # T maps this camera into the previous one
        prev = image
    res = evaluate(Trajectory(np.asarray(stamps), np.stack(poses)), dataset.ground_truth())
    return {"setting": "Open3D f2f", "ate_se3_cm": 100 * res["ate_rmse_se3"], "ate_sim3_cm": 100 * res["ate_rmse_sim3"],
            "rpe_trans_cm": 100 * res["rpe_trans_rmse"], "fps": 1.0 / float(np.median(step_s))}


def ours(path: Path, overrides: list[str], max_frames: int | None = None) -> list[dict]:
    """Our odometry / loops / full rows (see module docstring)."""
    import eval_backend_icl as ev
    from slam.config_loader import to_plain

    cfg = ev.run_config(str(path), overrides)
    rows = ev.run(str(path), max_frames, overrides=to_plain(cfg.backend), frontend_config=cfg.frontend.options(),
                  pair_scores=False)
    names = {"odometry only": "ours: odometry", "+ loop closure": "ours: loops",
             "+ loop closure + alignment": "ours: full"}
    return [{"setting": names[r["setting"]], "ate_se3_cm": r["ate_se3_cm"], "ate_sim3_cm": r["ate_sim3_cm"],
             "rpe_trans_cm": r["rpe_trans_cm"], "fps": r["frontend_median_fps"], "loops": r["loops"],
             "keyframes": r["keyframes"]} for r in rows if r["setting"] in names]


def markdown(table: dict[str, list[dict]], command: str, load: tuple[str, str]) -> str:
    """The table as Markdown."""
    lines = ["| sequence | system | ATE SE(3) cm | ATE Sim(3) cm | RPE cm | frames/s | keyframes | loops |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for seq, rows in table.items():
        for r in rows:
            lines.append(f"| {seq} | {r['setting']} | {r['ate_se3_cm']:.2f} | {r['ate_sim3_cm']:.2f} | "
                         f"{r['rpe_trans_cm']:.2f} | {r['fps']:.1f} | {r.get('keyframes', '-')} | "
                         f"{r.get('loops', '-')} |")
    lines += ["", f"Made by `{command}` on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC.",
              f"Machine load (`uptime`) at the start: `{load[0]}`; at the end: `{load[1]}`."]
    return "\n".join(lines) + "\n"


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = Path(os.environ.get("TTSA_SHARED", REPO.parent / "shared"))
    parser.add_argument("--data", default=str(shared / "data"), help="folder of sequences (default $TTSA_SHARED/data)")
    parser.add_argument("--out", default=str(REPO / "docs" / "real_data_table.md"),
                        help="Markdown file to write the table to (default docs/real_data_table.md)")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--only", action="append", default=[], help="sequence folder name (repeatable)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the plain Open3D rows")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="option override for our system, e.g. frontend.rgbd.method=icp (repeatable)")
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not data.is_dir():
        print(f"error: data folder not found: {data}", file=sys.stderr)
        raise SystemExit(2)
    seqs = [p for p in rgbd_sequences(data) if not args.only or p.name in args.only]
    load_start = _uptime()
    table: dict[str, list[dict]] = {}
    for seq in seqs:
        rows = [] if args.no_baseline else [open3d_f2f(seq, args.max_frames)]
        rows += ours(seq, args.overrides, args.max_frames)
        table[seq.name] = rows
        for r in rows:
            print(f"{seq.name:<34} {r['setting']:<16} ATE {r['ate_se3_cm']:6.2f} / {r['ate_sim3_cm']:6.2f} cm  "
                  f"RPE {r['rpe_trans_cm']:5.2f} cm  {r['fps']:5.1f} fps", flush=True)
    command = "python tools/" + " ".join([Path(__file__).name, *(argv if argv is not None else sys.argv[1:])])
    text = markdown(table, command, (load_start, _uptime()))
    if args.out:
        from slam.atomic import write_text_atomic

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(Path(args.out), text)
    print(text)
    return table


if __name__ == "__main__":
    from slam.entry import tool_main

    sys.exit(tool_main(main))
