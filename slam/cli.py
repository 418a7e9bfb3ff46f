"""The ``slam`` command: ``run``, ``demo``, ``eval``, ``frontends``, ``bench`` and ``export``.

Problems with the user's input (files, data, config, checkpoints) end with a one-line ``error: ...`` on
stderr and exit code 2; ``--debug`` shows the full traceback instead. Ctrl-C writes what was computed and
exits with 130.

OpenMP: unless the environment sets ``OMP_WAIT_POLICY``, :func:`main` sets it to ``PASSIVE`` before any
command imports torch, so idle OpenMP threads sleep instead of spinning (spinning threads slow every
step several-fold when another job holds one of the cores).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from slam.entry import EXIT_INTERRUPTED, report_errors
from slam.errors import ConfigError, SlamError



def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show full tracebacks and debug logging")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slam",
        description="TTSA-SLAM: dense SLAM with CUT3R / TTT3R / TTSA3R and RGB-D frontends.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p_run = sub.add_parser("run", help="run SLAM on a sequence (TUM, KITTI, image folder, video)")
    p_run.add_argument("--config", type=Path, help="YAML file layered over the defaults")
    p_run.add_argument("--data", type=Path, help="sequence folder or video file (sets dataset.path)")
    p_run.add_argument("--out", type=Path, help="output folder (sets output.dir)")
    p_run.add_argument("--sync", action="store_true", help="run the backend inline (deterministic)")
    p_run.add_argument("overrides", nargs="*", metavar="key=value",
                       help="config overrides, e.g. frontend.name=rgbd dataset.stride=2 viz=save")
    _add_common(p_run)

    p_demo = sub.add_parser("demo", help="render a synthetic RGB-D loop and run full SLAM on it (no download)")
    p_demo.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder")
    p_demo.add_argument("--frames", type=int, default=150, help="number of rendered frames")
    p_demo.add_argument("--size", type=_image_size, default=(240, 320), metavar="WxH",
                        help="rendered image size in pixels, width x height (default 320x240)")
    p_demo.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    _add_common(p_demo)

    p_eval = sub.add_parser("eval", help="evaluate a trajectory against ground truth (ATE, RPE via evo)",
                            description="slam eval --ref GT --est EST, evo's order slam eval tum|kitti GT EST, "
                                        "or slam eval EST GT. Writes eval_metrics.json and eval_trajectories.png.")
    p_eval.add_argument("files", nargs="*", type=Path, metavar="FILE", help="EST GT, or FORMAT GT EST (as evo)")
    p_eval.add_argument("--ref", type=Path, help="ground-truth trajectory (TUM or KITTI format)")
    p_eval.add_argument("--est", type=Path, help="estimated trajectory (TUM or KITTI format)")
    p_eval.add_argument("--out", type=Path, default=None, help="folder for eval_metrics.json and the plot "
                        "(default: the estimate's folder)")
    p_eval.add_argument("--format", choices=["auto", "tum", "kitti"], default="auto")
    p_eval.add_argument("--alignment", choices=["se3", "sim3", "origin", "none"], default=None,
                        help="alignment of the reported ate_rmse (default sim3; SE(3)/Sim(3) ATE always listed)")
    p_eval.add_argument("-a", "--align", action="store_true", help="as evo: SE(3) Umeyama alignment")
    p_eval.add_argument("-s", "--correct_scale", action="store_true", help="as evo: with scale (Sim(3))")
    p_eval.add_argument("--align_origin", action="store_true", help="as evo: align the first poses")
    p_eval.add_argument("--t_max_diff", type=float, default=0.01, help="max time-stamp difference (s) to associate")
    _add_common(p_eval)

    from slam.bench.cli import add_parser as add_bench_parser
    from slam.export.cli import add_parser as add_export_parser

    add_bench_parser(sub, _add_common)
    add_export_parser(sub, _add_common)

    p_cfg = sub.add_parser("config", help="print every configuration key with its value, type, default and source")
    mode = p_cfg.add_mutually_exclusive_group()
    mode.add_argument("--resolved", action="store_true", help="the values a run would use (default)")
    mode.add_argument("--defaults", action="store_true", help="the dataclass defaults only")
    p_cfg.add_argument("--config", type=Path, help="YAML file layered over the defaults")
    p_cfg.add_argument("--data", type=Path, help="sequence (its dataset kind selects the dataset layer)")
    p_cfg.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    _add_common(p_cfg)

    p_list = sub.add_parser("frontends", help="list registered frontends and datasets")
    _add_common(p_list)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from slam.config import load_run_config
    from slam.pipeline import run

    overrides = list(args.overrides)
    if args.sync:
        overrides.append("backend.sync=true")
    cfg = load_run_config(args.config, data=args.data, out=args.out, overrides=overrides)
    if not cfg.dataset.path:
        raise SlamError("no data given: use --data PATH (or dataset.path=PATH)", "command line")
    result = run(cfg, progress=not args.quiet)
    _print_summary(result)
    return result.exit_code or (EXIT_INTERRUPTED if result.interrupted else 0)


def _image_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> ``(480, 640)`` (height, width)."""
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or not (16 <= int(w) <= 4096 and 16 <= int(h) <= 4096):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT between 16 and 4096 pixels, e.g. 640x480, got {text!r}")
    return int(h), int(w)


def cmd_demo(args: argparse.Namespace) -> int:
    from slam.config import load_run_config
    from slam.pipeline import run
    from slam.synthetic import render_demo_sequence

    if args.frames < 2:
        raise ConfigError(f"--frames must be at least 2 (a closed loop), got {args.frames}", "command line")
    data_dir = args.out / "data"
    print(f"rendering a synthetic RGB-D loop ({args.frames} frames) into {data_dir} ...")
    render_demo_sequence(data_dir, n_frames=args.frames, size=args.size)
    cfg = load_run_config(None, data=data_dir, out=args.out,
                          overrides=["frontend.name=rgbd", *args.overrides])
    result = run(cfg, progress=not args.quiet)
    _print_summary(result)
    return result.exit_code or (EXIT_INTERRUPTED if result.interrupted else 0)


def cmd_eval(args: argparse.Namespace) -> int:
    from slam.evaluation import run_eval

    files, fmt = list(args.files), args.format
    if args.ref is not None or args.est is not None:
        if args.ref is None or args.est is None or files:
            raise SlamError("give both --ref GT and --est EST (and no positional files)", "slam eval")
        est, gt = args.est, args.ref
    elif len(files) == 3 and str(files[0]) in ("tum", "kitti") and not files[0].exists():
        fmt, gt, est = str(files[0]), files[1], files[2]  # evo's order: FORMAT REF EST
    elif len(files) == 2:
        est, gt = files
    else:
        raise SlamError("expected --ref GT --est EST, FORMAT GT EST, or EST GT", "slam eval")
    align = args.alignment or ("origin" if args.align_origin else "sim3" if args.correct_scale
                               else "se3" if args.align else "sim3")
    out = args.out if args.out is not None else est.parent
    run_eval(est, gt, out, fmt=fmt, max_time_diff=args.t_max_diff, align=align)
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from slam.config_report import config_rows, format_rows, resolve_with_origins

    cfg, origins = resolve_with_origins(args.config, args.data, list(args.overrides))
    print(format_rows(config_rows(cfg, origins, defaults_only=args.defaults)))
    return 0


def cmd_frontends(args: argparse.Namespace) -> int:
    import frontends
    from slam.datasets import DATASETS

    print("frontends:", ", ".join(frontends.FRONTENDS.names()))
    print("datasets: ", ", ".join(DATASETS.names()))
    return 0


def _print_summary(result) -> None:
    m = result.metrics
    lines = [f"{'interrupted after' if result.interrupted else 'processed'} {result.n_frames} frames "
             f"({m.get('frames_per_second') or 0:.2f} frames/s) -> {result.out_dir}"]
    if "ate_rmse_se3" in m:
        lines.append(f"ATE RMSE: {100 * m['ate_rmse_se3']:.2f} cm (SE(3) aligned), "
                     f"{100 * m['ate_rmse_sim3']:.2f} cm (Sim(3) aligned)")
    print("\n".join(lines))


def cmd_bench(args: argparse.Namespace) -> int:
    from slam.bench.cli import cmd

    return cmd(args)


def cmd_export(args: argparse.Namespace) -> int:
    from slam.export.cli import cmd

    return cmd(args)


COMMANDS = {"config": cmd_config, "run": cmd_run, "demo": cmd_demo, "eval": cmd_eval, "frontends": cmd_frontends,
            "bench": cmd_bench, "export": cmd_export}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch loads its OpenMP runtime
    parser = build_parser()
    # key=value overrides may stand anywhere among the options (``--data X a=1 --out Y b=2``)
    args, extra = parser.parse_known_args(argv)
    stray = [token for token in extra if token.startswith("-") or "=" not in token]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return report_errors(lambda: COMMANDS[args.command](args), args.debug, process_exit=argv is None)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
