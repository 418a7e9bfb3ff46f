"""The up-to-scale (Sim(3)) table of ``docs/sim3_real_data.md``: real RGB-D sequences x frontend variants x
backend presets, Sim(3) ATE and loop counts.

Frontend variants: the metric ``rgbd`` frontend, and ``rgbd`` wrapped by the ``perturbed`` frontend
(:mod:`frontends.perturbed`) at two scale drift rates and with periodic resets (new segments), every
perturbed variant answering ``pair()`` at a random scale within e^+-``--pair-log-scale``. The inner ``rgbd``
frontend runs once per sequence and is replayed under the variants without resets (its ``pair`` still runs
live); the variant with resets runs it again. Backend presets: ``odometry``, ``loops``, ``full``, each
with the backend section that ``slam run --data SEQ frontend=rgbd`` uses (all config layers), plus
``--set`` overrides. Usage::

    python tools/sim3_table.py ../shared/data/sevenscenes_redkitchen_stride4 ../shared/data/icl_livingroom1_micro \\
        [--markdown docs/sim3_real_data.md] [--variants metric,drift1,drift3,resets]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from frontends import create  # noqa: E402
from frontends.base import Frontend  # noqa: E402
from frontends.perturbed import PerturbedConfig, PerturbedFrontend  # noqa: E402
from slam.datasets import open_dataset  # noqa: E402
from slam.datasets.base import DatasetConfig  # noqa: E402
from slam.trajectory import Trajectory  # noqa: E402

PRESETS = ("odometry", "loops", "full")


def variants(pair_log_scale: float, reset_every: int) -> dict[str, PerturbedConfig | None]:
    """Frontend variants by short name: None = the metric inner frontend itself."""
    return {
        "metric": None,
        "drift1": PerturbedConfig(scale_drift=0.001, pair_log_scale=pair_log_scale),
        "drift3": PerturbedConfig(scale_drift=0.003, pair_log_scale=pair_log_scale),
        "resets": PerturbedConfig(scale_drift=0.001, pair_log_scale=pair_log_scale, reset_every=reset_every,
                                  segment_log_scale=0.5),
    }


DESCRIPTIONS = {
    "metric": "rgbd (metric)",
    "drift1": "perturbed rgbd, drift 0.001/frame",
    "drift3": "perturbed rgbd, drift 0.003/frame",
    "resets": "perturbed rgbd, drift 0.001/frame, reset every {reset} frames",
}


class Replay(Frontend):
    """Replays recorded outputs of a frontend by frame index; ``pair``/``refine_pair`` ask the live one."""

    def __init__(self, live: Frontend, outputs: dict[int, object]):
        self.live, self.outputs = live, outputs

    def reset(self) -> None:
        raise RuntimeError("a replayed stream cannot be reset")

    def step(self, frame):
        return self.outputs[frame.index]

    def pair(self, a, b):
        return self.live.pair(a, b)

    def refine_pair(self, a, b, T_ab):
        return self.live.refine_pair(a, b, T_ab)


def run_backends(frames: list, outputs: list, frontend: Frontend, gt: Trajectory, backend: dict) -> dict:
    """Replay one stream into each preset; {preset: {ate_sim3_cm, loops_accepted, loops_rejected, ...}}."""
    from eval_backend_icl import SETTINGS, evaluate_settings

    rows = evaluate_settings(list(zip(frames, outputs)), gt, frontend, sync=True, overrides=backend,
                             pair_scores=False)
    out = {}
    for preset, row in zip(SETTINGS.values(), rows):
        m = row["metrics"]
        out[preset] = {"ate_sim3_cm": row["ate_sim3_cm"], "loops_accepted": m["loops_accepted"],
                       "loops_rejected": m["loops_rejected"], "segment_links": m["segment_links"],
                       "segment_link_failures": m["segment_link_failures"],
                       "alignment_accepted": m.get("alignment", {}).get("accepted"), "backend_s": row["backend_s"]}
    return out


def run_sequence(path: str, names: list[str], pair_log_scale: float, reset_every: int, seed: int,
                 overrides: list[str]) -> dict[str, dict]:
    """All variants x presets on one sequence."""
    from slam.config import load_run_config
    from slam.config_loader import to_plain

    dotted = [o if o.split(".", 1)[0] in ("frontend", "backend") else f"backend.{o}" for o in overrides]
    cfg = load_run_config(data=path, overrides=["frontend=rgbd", *dotted])
    backend = to_plain(cfg.backend)
    dataset = open_dataset(DatasetConfig(path=path))
    frames = list(dataset)
    gt = dataset.ground_truth()
    inner = create("rgbd", cfg.frontend.options())
    recorded = [inner.step(f) for f in frames]
    table = {}
    for name, pcfg in variants(pair_log_scale, reset_every).items():
        if name not in names:
            continue
        if pcfg is None:
            frontend, outputs = inner, recorded
        else:
            pcfg = dataclasses.replace(pcfg, seed=seed)
            if pcfg.reset_every:
                frontend = PerturbedFrontend(pcfg, inner=create("rgbd", cfg.frontend.options()))
            else:
                frontend = PerturbedFrontend(pcfg, inner=Replay(inner, {f.index: o for f, o in zip(frames, recorded)}))
            outputs = [frontend.step(f) for f in frames]
        table[name] = run_backends(frames, outputs, frontend, gt, backend)
        print_rows(Path(path).name, {name: table[name]}, reset_every)
    return table


def print_rows(seq: str, table: dict[str, dict], reset_every: int) -> None:
    for name, row in table.items():
        cells = "  ".join(f"{p}: {row[p]['ate_sim3_cm']:.2f} cm {row[p]['loops_accepted']}/{row[p]['loops_rejected']}"
                          for p in PRESETS)
        print(f"{seq:<34} {DESCRIPTIONS[name].format(reset=reset_every):<48} {cells}", flush=True)


def markdown(results: dict[str, dict[str, dict]], reset_every: int, command: str) -> str:
    lines = ["| sequence | frontend | odometry ATE | loops ATE | loops acc./rej. | full ATE | full acc./rej. "
             "| alignment kept | segment links ok/failed |", "|---|---|---|---|---|---|---|---|---|"]
    for seq, table in results.items():
        for name, row in table.items():
            o, lp, f = row["odometry"], row["loops"], row["full"]
            lines.append(f"| {seq} | {DESCRIPTIONS[name].format(reset=reset_every)} | {o['ate_sim3_cm']:.2f} "
                         f"| {lp['ate_sim3_cm']:.2f} | {lp['loops_accepted']}/{lp['loops_rejected']} "
                         f"| {f['ate_sim3_cm']:.2f} | {f['loops_accepted']}/{f['loops_rejected']} "
                         f"| {f['alignment_accepted']} | {f['segment_links']}/{f['segment_link_failures']} |")
    return "\n".join(lines) + f"\n\nSim(3) ATE RMSE in cm. Made by `{command}`.\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="TUM-layout RGB-D sequence folders")
    parser.add_argument("--variants", default="metric,drift1,drift3,resets")
    parser.add_argument("--pair-log-scale", type=float, default=0.2)
    parser.add_argument("--reset-every", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", help="write the table into this file between the TABLE markers")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="option override, e.g. loop_closure.min_inlier_ratio=0.6 (a backend key; repeatable)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = set(names) - set(variants(0, 0))
    if unknown:
        print(f"error: unknown variant(s) {', '.join(sorted(unknown))} (known: {', '.join(variants(0, 0))})")
        raise SystemExit(2)
    results = {Path(p).name: run_sequence(p, names, args.pair_log_scale, args.reset_every, args.seed, args.overrides)
               for p in args.paths}
    if args.markdown:
        write_table(Path(args.markdown), markdown(results, args.reset_every,
                                                  "python tools/sim3_table.py " + " ".join(argv or sys.argv[1:])))
    return results


def write_table(path: Path, table: str) -> None:
    """Replace the text between ``<!-- TABLE -->`` and ``<!-- /TABLE -->`` in ``path`` (atomic write)."""
    from slam.atomic import write_text_atomic

    text = path.read_text() if path.is_file() else "<!-- TABLE -->\n<!-- /TABLE -->\n"
    head, _, rest = text.partition("<!-- TABLE -->")
    _, _, tail = rest.partition("<!-- /TABLE -->")
    write_text_atomic(path, f"{head}<!-- TABLE -->\n{table}<!-- /TABLE -->{tail}")


if __name__ == "__main__":
    from slam.entry import tool_main

    sys.exit(tool_main(main))
