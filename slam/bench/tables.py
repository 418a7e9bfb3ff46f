"""Rows and tables of ``slam bench``: ``results.csv``, ``results.json``, ``results.md``.

A row is built from the run's own ``metrics.json`` (written by ``slam run``; its ATE/RPE come from evo
through :func:`slam.evaluation.evaluate`) plus what the bench measured around the process (status,
peak memory). Units: metres, degrees, frames per second, MiB.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slam.atomic import write_text_atomic

if TYPE_CHECKING:
    from slam.bench.runner import RunSpec

COLUMNS = ("sequence", "frontend", "status", "error", "frames", "ate_se3_m", "ate_sim3_m", "rpe_trans_m",
           "rpe_rot_deg", "fps", "peak_rss_mb", "peak_gpu_mb", "t_err_pct", "r_err_deg_per_100m", "wall_s",
           "protocol", "out_dir")
#: Row column <- keys of ``metrics.json`` (first one present wins).
METRIC_KEYS = {
    "frames": ("frames",),
    "ate_se3_m": ("ate_rmse_se3",),
    "ate_sim3_m": ("ate_rmse_sim3",),
    "rpe_trans_m": ("rpe_trans_rmse",),
    "rpe_rot_deg": ("rpe_rot_rmse_deg",),
    "fps": ("frames_per_second",),
    "t_err_pct": ("t_err_pct", "kitti_t_err_pct"),
    "r_err_deg_per_100m": ("r_err_deg_per_100m", "kitti_r_err_deg_per_100m"),
}
#: Columns averaged in the per-frontend summary.
SUMMARY_COLUMNS = ("ate_se3_m", "ate_sim3_m", "rpe_trans_m", "rpe_rot_deg", "fps", "peak_rss_mb", "peak_gpu_mb",
                   "t_err_pct", "r_err_deg_per_100m")
STATUSES = ("ok", "failed", "oom", "timeout")


def read_metrics(run_dir: str | Path) -> dict:
    """The run's ``metrics.json`` (empty dict when missing or unreadable)."""
    path = Path(run_dir) / "metrics.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def row_from_run(spec: RunSpec, status: str, error: str = "", peak_rss_mb: float | None = None,
                 peak_gpu_mb: float | None = None, wall_s: float | None = None) -> dict:
    """One table row for ``spec``; metrics are taken from its ``metrics.json`` when present."""
    metrics = read_metrics(spec.out_dir)
    row: dict[str, Any] = {c: None for c in COLUMNS}
    row.update(sequence=spec.sequence, frontend=spec.frontend, status=status, error=error or "",
               peak_rss_mb=peak_rss_mb, peak_gpu_mb=peak_gpu_mb, wall_s=wall_s, protocol=spec.protocol,
               out_dir=str(spec.out_dir))
    for column, keys in METRIC_KEYS.items():  # a run that did not finish ok keeps only its frame count
        if status == "ok" or column == "frames":
            row[column] = next((metrics[k] for k in keys if metrics.get(k) is not None), None)
    if status == "ok" and metrics.get("evaluation_error"):
        row["error"] = f"evaluation: {metrics['evaluation_error']}"
    return row


def summarize(rows: list[dict]) -> list[dict]:
    """Per frontend: number of runs, of ok runs, of the others, and the mean of each metric over ok runs."""
    out = []
    for frontend in dict.fromkeys(r["frontend"] for r in rows):
        mine = [r for r in rows if r["frontend"] == frontend]
        ok = [r for r in mine if r["status"] == "ok"]
        entry: dict[str, Any] = {"frontend": frontend, "runs": len(mine), "ok": len(ok), "not_ok": len(mine) - len(ok)}
        for column in SUMMARY_COLUMNS:
            values = [r[column] for r in ok if isinstance(r.get(column), (int, float))]
            entry[f"mean_{column}"] = sum(values) / len(values) if values else None
        out.append(entry)
    return out


#: Decimals in ``results.md`` by column suffix (the CSV/JSON keep full precision).
_DIGITS = {"_m": 4, "_deg": 3, "fps": 2, "_mb": 0, "_s": 1, "_pct": 2, "_100m": 3}


def _fmt(value: Any, column: str = "") -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        digits = next((d for suffix, d in _DIGITS.items() if column.endswith(suffix)), 4)
        return "" if not math.isfinite(value) else f"{value:.{digits}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in COLUMNS})
    return buf.getvalue()


def to_markdown(rows: list[dict], protocol: str, scored: str) -> str:
    optional = ("peak_gpu_mb", "t_err_pct", "r_err_deg_per_100m")
    shown = [c for c in COLUMNS if c not in ("protocol", "out_dir")
             and (c not in optional or any(r.get(c) is not None for r in rows))]
    lines = [f"Protocol `{protocol}`. Scored: {scored}. ATE/RPE are RMSE from evo (m, deg); "
             "the scored trajectory is each run's `trajectory.tum` (every processed frame).", "",
             "| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c), c) for c in shown) + " |")
    summary = summarize(rows)
    cols = ["frontend", "runs", "ok", "not_ok"] + [f"mean_{c}" for c in SUMMARY_COLUMNS
                                                    if any(s[f"mean_{c}"] is not None for s in summary)]
    lines += ["", "Summary per frontend (means over ok runs):", "",
              "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for entry in summary:
        lines.append("| " + " | ".join(_fmt(entry.get(c), c) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def sort_rows(rows: list[dict], order: list[tuple[str, str]]) -> list[dict]:
    """Rows in sweep order (``order`` = [(sequence, frontend), ...])."""
    rank = {key: i for i, key in enumerate(order)}
    return sorted(rows, key=lambda r: rank.get((r["sequence"], r["frontend"]), len(rank)))


def write_tables(out_dir: str | Path, rows: list[dict], protocol: str, scored: str,
                 interrupted: bool = False) -> None:
    """Write ``results.csv``, ``results.json`` and ``results.md`` into ``out_dir`` (atomically)."""
    out_dir = Path(out_dir)
    payload = {"protocol": protocol, "scored": scored, "interrupted": interrupted, "columns": list(COLUMNS),
               "rows": rows, "summary": summarize(rows)}
    write_text_atomic(out_dir / "results.csv", to_csv(rows))
    write_text_atomic(out_dir / "results.json", json.dumps(payload, indent=2) + "\n")
    write_text_atomic(out_dir / "results.md", to_markdown(rows, protocol, scored))
