"""The ``slam bench`` sub-command: argument parser and command (registered by :mod:`slam.cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub, add_common) -> None:
    from slam.bench.protocols import PROTOCOLS

    p = sub.add_parser("bench", help="run many (sequence, frontend) pairs and tabulate ATE/RPE/speed/memory",
                       description="One `slam run` per (sequence, frontend), each in its own process; tables "
                                   "DIR/results.{csv,json,md} and DIR/plots/. Exit 0 when the sweep finished "
                                   "(failed runs are rows of the table), 130 when interrupted.")
    p.add_argument("--data", nargs="+", required=True, metavar="PATH", help="sequence folders or videos")
    p.add_argument("--frontends", required=True, metavar="NAME[,NAME...]", help="comma-separated frontends")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="sweep folder")
    p.add_argument("--workers", type=int, default=1, help="runs at the same time (local processes or Ray CPUs)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run each run as a Ray task: a local Ray runtime, or join the cluster at ADDRESS "
                        "(needs the 'ray' extra; DIR and the data must be visible to every node)")
    p.add_argument("--ray-gpus", type=float, default=0.0, metavar="G",
                   help="GPUs each Ray task reserves (e.g. 1 for the CUT3R family, 0.5 to share one)")
    p.add_argument("--protocol", default="default", choices=list(PROTOCOLS), help="frame selection and scoring")
    p.add_argument("--resume", action="store_true", help="keep runs of DIR that finished ok with complete outputs")
    p.add_argument("--timeout", type=float, default=None, metavar="S", help="wall-clock limit per run (s)")
    p.add_argument("--max-memory", type=float, default=None, metavar="MiB",
                   help="address-space limit (RLIMIT_AS) per run's process; counts virtual memory")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for every run")
    add_common(p)


def cmd(args: argparse.Namespace) -> int:
    from slam.bench import BenchOptions, run_bench

    data, overrides = [], list(args.overrides)
    for item in args.data:  # ``--data A B key=value`` : the override is not a path
        (overrides if "=" in item and not Path(item).exists() else data).append(item)
    address = args.ray
    if address and "=" in address:  # ``--ray key=value``: a local runtime and one more override
        overrides.insert(0, address)
        address = ""
    opts = BenchOptions(data=data, frontends=[f.strip() for f in args.frontends.split(",") if f.strip()],
                        out=str(args.out), workers=args.workers, ray=address is not None,
                        ray_address=address or None, ray_gpus=args.ray_gpus, protocol=args.protocol, resume=args.resume,
                        overrides=tuple(overrides), timeout_s=args.timeout, max_memory_mb=args.max_memory,
                        progress=not args.quiet, plots=not args.no_plots)
    result = run_bench(opts)
    counts = {s: sum(r["status"] == s for r in result.rows) for s in ("ok", "failed", "oom", "timeout")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    print(f"{'interrupted: ' if result.interrupted else ''}{len(result.rows)} run(s) ({summary or 'none'}) -> "
          f"{args.out / 'results.md'}")
    return 130 if result.interrupted else 0
