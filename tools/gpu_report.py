#!/usr/bin/env python
"""Collect the figures of one ``tools/gpu_check.sh`` run into ``report.json`` and ``report.md``.

Reads ``OUT/bench_*.json`` (``tools/bench_frontend.py`` output: per rule or per STream3R mode) and
``OUT/slam_ttsa3r/metrics.json``; per-frame series are summarised as the memory drift
``(max - min) / min`` of the per-frame peaks from frame 10 on, and every compiled run is compared with its
eager twin (``bench_X_compiled`` against ``bench_X``).

Usage: ``python tools/gpu_report.py OUT [--started UNIX_SECONDS]``
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path


def drift_pct(series: list[float], start: int = 10) -> float:
    """Spread of the per-frame peaks from frame ``start`` on, in percent of the smallest (nan if empty)."""
    tail = series[start:] or series
    return 100.0 * (max(tail) - min(tail)) / max(min(tail), 1e-9) if tail else math.nan


def collect(out: Path, started: float | None = None, device: str | None = None) -> dict:
    """The report as a dict: ``device``, ``benchmarks`` {run: {rule_or_mode: figures}}, ``slam``, ``wall_s``."""
    report = {"device": device, "benchmarks": {}, "slam": {}, "wall_s": None}
    for path in sorted(out.glob("bench_*.json")):
        runs = json.loads(path.read_text())
        for figures in runs.values():
            series = figures.pop("mem_series_mb", None) or figures.pop("peak_mb", None) or []
            figures.pop("ms", None)
            figures.setdefault("frames_per_second", 1e3 / figures["ms_per_frame"])
            figures.setdefault("mem_drift_pct", drift_pct(series))
        report["benchmarks"][path.stem.removeprefix("bench_")] = runs
    metrics = out / "slam_ttsa3r" / "metrics.json"
    if metrics.is_file():
        report["slam"] = json.loads(metrics.read_text())
    if started is not None:
        report["wall_s"] = round(time.time() - started, 1)
    return report


def markdown(report: dict) -> str:
    """The report's table: one row per (run, rule or mode)."""
    benchmarks = report["benchmarks"]
    lines = [f"# GPU check: {report['device']} ({report['wall_s']} s)", "",
             "| run | rule / mode | frames/s | peak MB | memory drift % (from frame 10) | x eager |",
             "|---|---|---|---|---|---|"]
    for tag, runs in benchmarks.items():
        eager = benchmarks.get(tag.removesuffix("_compiled"), runs)
        for name, f in runs.items():
            base = eager.get(name, f)
            ratio = f["frames_per_second"] / base["frames_per_second"]
            lines.append(f"| {tag} | {name} | {f['frames_per_second']:.1f} | {f['peak_mem_mb']:.0f} | "
                         f"{f['mem_drift_pct']:.2f} | {ratio:.2f} |")
    fps = report["slam"].get("frames_per_second")
    lines += ["", f"Full SLAM (ttsa3r, bf16, random weights): "
                  f"{'not run' if fps is None else f'{fps:.1f} frames/s'}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the gpu_check output folder")
    parser.add_argument("--started", type=float, default=None, help="start time (Unix seconds) of the check")
    args = parser.parse_args(argv)
    if not args.out.is_dir():
        print(f"error: {args.out}: no such folder", file=sys.stderr)
        return 2
    device = None
    try:
        import torch

        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except ImportError:
        pass
    report = collect(args.out, args.started, device)
    (args.out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    table = markdown(report)
    (args.out / "report.md").write_text(table)
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from slam.entry import tool_main

    sys.exit(tool_main(main))
