"""Plots of a sweep (matplotlib, Agg; PNGs in ``DIR/plots/``).

* ``<sequence>__<frontend>_ape.png``: the run's trajectory (aligned onto the ground truth as its
  protocol scores it: Sim(3) when the primary metric is Sim(3) ATE, else SE(3)) coloured by the
  per-pose APE in metres, over the ground truth, as ``evo_ape --plot`` shows it;
* ``<sequence>_trajectories.png``: every frontend's aligned trajectory of that sequence with the ground truth;
* ``ate_bars.png``: ATE per sequence (groups) and frontend (bars).

The ground truth is read by re-opening the dataset from the run's ``run.yaml``. Top-down views drop the
world axis along which the ground truth varies least.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from slam.atomic import atomic_path

log = logging.getLogger(__name__)


def _figure(size=(6.0, 5.0)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)


def aligned_run(run_dir: str | Path, correct_scale: bool):
    """(gt xyz (n,3), aligned estimate xyz (n,3), APE per pose (n,) m) of the matched poses of a run."""
    from evo.core import metrics

    from slam.config import load_run_config
    from slam.datasets import open_dataset
    from slam.evaluation import _aligned, associate
    from slam.trajectory import read_trajectory

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir / "run.yaml")
    gt = open_dataset(cfg.dataset).ground_truth()
    if gt is None:
        return None
    est = read_trajectory(run_dir / "trajectory.tum", "tum")
    gt_m, est_m = associate(est, gt)
    est_a, *_ = _aligned(est_m, gt_m, correct_scale=correct_scale)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((gt_m, est_a))
    return gt_m.positions_xyz, est_a.positions_xyz, np.asarray(ape.error)


def _view_axes(xyz: np.ndarray) -> list[int]:
    return sorted(int(a) for a in np.argsort(xyz.std(axis=0))[1:])


def plot_run(path: Path, title: str, gt: np.ndarray, est: np.ndarray, ape: np.ndarray) -> None:
    """Trajectory coloured by APE (m) over the ground truth (grey)."""
    from matplotlib.collections import LineCollection

    a, b = _view_axes(gt)
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(gt[:, a], gt[:, b], "--", color="0.5", label="ground truth")
    pts = est[:, [a, b]]
    segments = np.stack([pts[:-1], pts[1:]], axis=1)
    lc = LineCollection(segments, cmap="jet", linewidths=2.0, label="estimate (colour: APE)")
    lc.set_array(0.5 * (ape[:-1] + ape[1:]))
    ax.add_collection(lc)
    fig.colorbar(lc, ax=ax, label="APE [m]")
    ax.set_xlabel(f"{'xyz'[a]} [m]")
    ax.set_ylabel(f"{'xyz'[b]} [m]")
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal", adjustable="datalim")
    ax.autoscale_view()
    ax.legend(loc="best")
    ax.grid(True, alpha=0.3)
    _save(fig, path)


def plot_sequence(path: Path, sequence: str, runs: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """All frontends' aligned trajectories (``runs``: frontend -> (gt xyz, est xyz)) of one sequence."""
    gt_ref = max((gt for gt, _ in runs.values()), key=len)
    a, b = _view_axes(gt_ref)
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(gt_ref[:, a], gt_ref[:, b], "--", color="0.3", label="ground truth")
    for frontend, (_, est) in runs.items():
        ax.plot(est[:, a], est[:, b], "-", label=frontend)
    ax.set_xlabel(f"{'xyz'[a]} [m]")
    ax.set_ylabel(f"{'xyz'[b]} [m]")
    ax.set_title(sequence, fontsize=9)
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="best")
    ax.grid(True, alpha=0.3)
    _save(fig, path)


def plot_bars(path: Path, rows: list[dict], column: str) -> None:
    """Grouped bars of ``column`` (m) per sequence and frontend; runs that are not ok have no bar."""
    sequences = list(dict.fromkeys(r["sequence"] for r in rows))
    frontends = list(dict.fromkeys(r["frontend"] for r in rows))
    value = {(r["sequence"], r["frontend"]): r.get(column) for r in rows if r["status"] == "ok"}
    width = 0.8 / max(len(frontends), 1)
    fig = _figure((max(5.0, 1.2 * len(sequences) * max(1, len(frontends)) ** 0.5 + 2), 4.0))
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(sequences))
    for k, frontend in enumerate(frontends):
        heights = [value.get((s, frontend)) for s in sequences]
        ax.bar(x + (k - (len(frontends) - 1) / 2) * width,
               [np.nan if h is None else h for h in heights], width, label=frontend)
    ax.set_xticks(x)
    ax.set_xticklabels(sequences, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(f"{column} [m]")
    ax.legend(loc="best")
    ax.grid(True, axis="y", alpha=0.3)
    _save(fig, path)


def write_plots(out_dir: str | Path, rows: list[dict]) -> list[Path]:
    """All plots of a sweep into ``out_dir/plots``; returns the files written."""
    from slam.bench.protocols import get_protocol

    plots = Path(out_dir) / "plots"
    written = []
    per_sequence: dict[str, dict] = {}
    for row in rows:
        if row["status"] != "ok" or row.get("ate_se3_m") is None:
            continue
        correct_scale = get_protocol(row.get("protocol") or "default").primary == "ate_sim3_m"
        try:
            aligned = aligned_run(row["out_dir"], correct_scale)
        except Exception as exc:  # noqa: BLE001 - one bad run must not cost the other plots
            log.warning("no plot for %s/%s: %s", row["sequence"], row["frontend"], exc)
            continue
        if aligned is None:
            continue
        gt, est, ape = aligned
        path = plots / f"{row['sequence']}__{row['frontend']}_ape.png"
        align = "Sim(3)" if correct_scale else "SE(3)"
        plot_run(path, f"{row['sequence']} / {row['frontend']}: APE after {align} alignment, "
                 f"RMSE {np.sqrt(np.mean(ape ** 2)):.4f} m", gt, est, ape)
        written.append(path)
        per_sequence.setdefault(row["sequence"], {})[row["frontend"]] = (gt, est)
    for sequence, runs in per_sequence.items():
        path = plots / f"{sequence}_trajectories.png"
        plot_sequence(path, sequence, runs)
        written.append(path)
    if any(r["status"] == "ok" for r in rows):
        column = "ate_sim3_m" if get_protocol(rows[0].get("protocol") or "default").primary == "ate_sim3_m" \
            else "ate_se3_m"
        path = plots / "ate_bars.png"
        plot_bars(path, rows, column)
        written.append(path)
    return written
