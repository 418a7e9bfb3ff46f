"""Cost of the Rerun sink per frame on a realistic 640x480 RGB-D stream: viewer on vs off.

Feeds the frames of a TUM-layout sequence (default: the ICL micro sequence in ../shared) through the
sink API exactly as the pipeline does -- a FrameEvent per frame and ``on_keyframes`` every
``--kf-every`` frames -- with the reference poses standing in for the estimate and the depth back-projected
at the working size standing in for the frontend's pointmap. Only the time spent inside the sinks is timed
(reading images is not). Run twice in one process: map sink alone (viz off), then map sink + Rerun sink.

    python tools/bench_viz.py [--data DIR] [--frames N] [--mode save|serve] [--scale 0.5] [--budget 15]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mapping import build_sinks  # noqa: E402
from mapping.config import MappingConfig, VizConfig  # noqa: E402
from slam.datasets import DatasetConfig, open_dataset  # noqa: E402
from slam.pointmaps import backproject_depth  # noqa: E402
from slam.sinks import FrameEvent, RunInfo  # noqa: E402
from slam.types import Frame, FrontendOutput, Keyframe  # noqa: E402


def frontend_output(frame: Frame) -> FrontendOutput:
    """An RGB-D frontend's output for ``frame`` at full size: pointmap from depth, confidence = valid depth."""
    points = backproject_depth(frame.depth, frame.K)
    return FrontendOutput(pose=frame.gt_pose, points=points, confidence=(frame.depth > 0).astype(np.float32),
                          K=frame.K, colors=frame.rgb, metric=True, stats={"update_weight_mean": 0.0})


def make_keyframe(kf_id: int, frame: Frame, out: FrontendOutput, stride: int = 8) -> Keyframe:
    h, w = out.points[::stride, ::stride].shape[:2]
    K = np.asarray(frame.K, dtype=np.float64).copy()
    K[:2] /= stride
    return Keyframe(id=kf_id, frame_index=frame.index, timestamp=frame.timestamp,
                    points=np.ascontiguousarray(out.points[::stride, ::stride]),
                    confidence=np.ascontiguousarray(out.confidence[::stride, ::stride]),
                    colors=np.ascontiguousarray(out.colors[::stride, ::stride]), K=K, pose=frame.gt_pose.copy(),
                    frontend_pose=frame.gt_pose.copy(), metric=True, frame=frame)


def run(data: Path, n_frames: int, viz: VizConfig, kf_every: int, out_dir: Path) -> dict:
    """Stream ``n_frames`` through the sinks; returns per-frame sink times (ms) and the outputs' sizes."""
    ds = open_dataset(DatasetConfig(kind="tum", path=str(data), max_frames=n_frames))
    mapping_cfg = MappingConfig(voxel_size=0.02)
    mapping_cfg.tsdf.enabled = "off"  # TSDF cost is the same with the viewer on or off; keep it out
    sinks = build_sinks(mapping_cfg, viz, out_dir)
    gt = ds.ground_truth()
    info = RunInfo(out_dir=str(out_dir), n_frames=len(ds), frontend="rgbd", metric=True,
                   gt_poses=None if gt is None else gt.poses, timestamps=None if gt is None else gt.timestamps)
    per_frame, keyframes = [], []
    t_start = time.perf_counter()
    for s in sinks:
        s.start(info)
    for frame in ds:
        out = frontend_output(frame)
        event = FrameEvent(frame=frame, output=out, pose=frame.gt_pose, fps=30.0, metrics={"fps": 30.0})
        started = time.perf_counter()
        for s in sinks:
            s.on_frame(event)
        if frame.index % kf_every == 0:
            keyframes.append(make_keyframe(len(keyframes), frame, out))
            for s in sinks:
                s.on_keyframes(keyframes, [])
        per_frame.append((time.perf_counter() - started) * 1000.0)
    started = time.perf_counter()
    poses = np.stack([kf.pose for kf in keyframes])
    for s in sinks:
        s.finish(np.zeros(len(poses)), poses, {})
        s.close()
    end_ms = (time.perf_counter() - started) * 1000.0
    rrd = out_dir / "run.rrd"
    return {"ms": np.asarray(per_frame), "end_ms": end_ms, "wall_s": time.perf_counter() - t_start,
            "rrd_mb": rrd.stat().st_size / 1e6 if rrd.exists() else 0.0,
            "stride": getattr(sinks[-1], "heavy_stride", None),
            "cpu_ms": sinks[-1].stats().get("mean_cpu_ms") if hasattr(sinks[-1], "stats") else None}


def main(argv: list[str] | None = None) -> None:
    repo = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=repo.parent / "shared" / "data" / "icl_livingroom1_micro")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--mode", default="save", choices=["save", "serve"])
    parser.add_argument("--scale", type=float, default=0.5, help="viz.image_scale")
    parser.add_argument("--budget", type=float, default=15.0, help="viz.budget_ms")
    parser.add_argument("--kf-every", type=int, default=10)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for name, viz in (("off", VizConfig(mode="off")),
                          (args.mode, VizConfig(mode=args.mode, image_scale=args.scale, budget_ms=args.budget,
                                                port=9877))):
            results[name] = run(args.data, args.frames, viz, args.kf_every, Path(tmp) / name)
    print(f"{args.frames} frames 640x480 from {args.data.name}, keyframe every {args.kf_every}, "
          f"image_scale {args.scale}, budget {args.budget} ms")
    print(f"{'viz':>6} {'mean ms':>8} {'median':>7} {'p95':>7} {'max':>7} {'end ms':>7} {'rrd MB':>7} {'img every':>9}")
    for name, r in results.items():
        ms = r["ms"]
        print(f"{name:>6} {ms.mean():8.2f} {np.median(ms):7.2f} {np.percentile(ms, 95):7.2f} {ms.max():7.2f} "
              f"{r['end_ms']:7.0f} {r['rrd_mb']:7.1f} {str(r['stride'] or '-'):>9}")
    off, on = results["off"]["ms"], results[args.mode]["ms"]
    print(f"Rerun logging overhead: {on.mean() - off.mean():.2f} ms/frame (mean), "
          f"{np.median(on) - np.median(off):.2f} ms/frame (median); "
          f"Rerun sink CPU time of the calling thread {results[args.mode]['cpu_ms']:.2f} ms/frame")


if __name__ == "__main__":
    from slam.entry import tool_main

    sys.exit(tool_main(main))
