"""``slam bench``: one run per (sequence, frontend), gathered into tables and plots.

Layout of ``DIR``: ``<sequence>/<frontend>/`` (exactly what ``slam run`` writes), ``logs/`` (per run: the
child's output ``.log``, its result ``.child.json`` and its table ``.row.json``), ``results.{csv,json,md}``
(rewritten after every finished run, so an interrupted sweep keeps a partial table) and ``plots/``.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from slam.bench.protocols import get_protocol, run_overrides
from slam.bench.runner import RunSpec, SweepResult, require_ray, run_local, run_ray, unique_sequence_names
from slam.bench.tables import read_metrics, sort_rows, write_tables
from slam.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class BenchOptions:
    """What ``slam bench`` was asked (see the CLI help)."""

    data: list[str]
    frontends: list[str]
    out: str
    workers: int = 1
    ray: bool = False
    ray_address: str | None = None
    ray_gpus: float = 0.0
    protocol: str = "default"
    resume: bool = False
    overrides: tuple[str, ...] = ()
    timeout_s: float | None = None
    max_memory_mb: float | None = None
    progress: bool = True
    plots: bool = True


def plan(opts: BenchOptions) -> list[RunSpec]:
    """The runs of the sweep, sequence-major; checks frontends and overrides before anything runs."""
    from slam.config import load_run_config

    if not opts.data:
        raise ConfigError("no sequences given", "--data")
    if not opts.frontends:
        raise ConfigError("no frontends given", "--frontends")
    if opts.workers < 1:
        raise ConfigError(f"must be >= 1, got {opts.workers}", "--workers")
    if opts.ray_gpus < 0 or (opts.ray_gpus and not opts.ray):
        raise ConfigError("GPUs per run must be >= 0 and need --ray", "--ray-gpus")
    protocol = get_protocol(opts.protocol)
    overrides = run_overrides(protocol, list(opts.overrides))
    for frontend in opts.frontends:  # unknown frontend or bad key: one error now, not one per run
        load_run_config(None, overrides=[*overrides, f"frontend.name={frontend}"])
    out = Path(opts.out)
    specs = []
    for name, data in zip(unique_sequence_names(opts.data), opts.data):
        for frontend in opts.frontends:
            specs.append(RunSpec(sequence=name, frontend=frontend, data=str(data),
                                 out_dir=str(out / name / frontend), log_dir=str(out / "logs"),
                                 overrides=tuple(overrides), protocol=protocol.name, scored=protocol.scored,
                                 timeout_s=opts.timeout_s, max_memory_mb=opts.max_memory_mb))
    return specs


def completed_row(spec: RunSpec) -> dict | None:
    """The stored row of a finished ``ok`` run whose outputs are complete (for ``--resume``), else None."""
    row_file = spec.file(".row.json")
    metrics = read_metrics(spec.out_dir)
    if not row_file.is_file() or not metrics or metrics.get("interrupted", True):
        return None
    if not (Path(spec.out_dir) / "trajectory.tum").is_file():
        return None
    try:
        row = json.loads(row_file.read_text())
    except ValueError:
        return None
    same_run = row.get("protocol") == spec.protocol and row.get("out_dir") == spec.out_dir
    return row if row.get("status") == "ok" and same_run else None


def run_bench(opts: BenchOptions) -> SweepResult:
    """Run the sweep; tables are written after every finished run and at the end, plots at the end."""
    from tqdm import tqdm

    specs = plan(opts)
    if opts.ray:
        require_ray()
    protocol = get_protocol(opts.protocol)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    order = [(s.sequence, s.frontend) for s in specs]
    rows: list[dict] = []
    todo = []
    for spec in specs:
        row = completed_row(spec) if opts.resume else None
        if row is not None:
            rows.append(row)
        else:
            todo.append(spec)
    bar = tqdm(total=len(specs), initial=len(rows), desc="bench", unit="run", file=sys.stderr,
               dynamic_ncols=True, disable=not opts.progress)
    if rows:
        bar.write(f"resume: {len(rows)} complete run(s) kept, {len(todo)} to run")

    def on_row(row: dict) -> None:
        rows.append(row)
        bar.update(1)
        bar.write(_one_line(row, len(rows), len(specs)))
        write_tables(out, sort_rows(rows, order), protocol.name, protocol.scored, interrupted=True)

    try:
        if opts.ray:
            result = run_ray(todo, opts.ray_address, opts.workers, on_row, opts.ray_gpus)
        else:
            result = run_local(todo, opts.workers, on_row)
    finally:
        bar.close()
    result.rows = sort_rows(rows, order)
    write_tables(out, result.rows, protocol.name, protocol.scored, interrupted=result.interrupted)
    if opts.plots and result.rows:
        from slam.bench.plots import write_plots

        try:
            write_plots(out, result.rows)
        except Exception as exc:  # noqa: BLE001 - plots never cost the tables
            log.warning("plots failed: %s", exc)
    return result


def _one_line(row: dict, k: int, n: int) -> str:
    text = f"[{k}/{n}] {row['sequence']}/{row['frontend']}: {row['status']}"
    if row["status"] == "ok":
        parts = []
        if row.get("ate_se3_m") is not None:
            parts.append(f"ATE {100 * row['ate_se3_m']:.2f} cm SE(3), {100 * row['ate_sim3_m']:.2f} cm Sim(3)")
        if row.get("fps") is not None:
            parts.append(f"{row['fps']:.2f} frames/s")
        if row.get("peak_rss_mb") is not None:
            parts.append(f"peak RSS {row['peak_rss_mb']:.0f} MiB")
        text += (" - " + ", ".join(parts)) if parts else ""
    else:
        text += f" - {row['error']}"
    return text
