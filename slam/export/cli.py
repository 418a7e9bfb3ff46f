"""The ``slam export`` sub-command (registered by :mod:`slam.cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub, add_common) -> None:
    p = sub.add_parser("export", help="export a run (colmap: keyframes + map as a COLMAP text model)")
    p.add_argument("format", choices=["colmap"], help="export format")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="folder written by `slam run`")
    p.add_argument("out", type=Path, metavar="OUT", help="folder for cameras.txt, images.txt, points3D.txt")
    p.add_argument("--max-points", type=int, default=200_000, help="points3D.txt keeps at most this many map points")
    add_common(p)


def cmd(args: argparse.Namespace) -> int:
    from slam.export.colmap import export_colmap

    summary = export_colmap(args.run_dir, args.out, max_points=args.max_points)
    print(f"COLMAP model: {summary['images']} images, {summary['cameras']} camera(s), "
          f"{summary['points']} points -> {args.out}")
    return 0
