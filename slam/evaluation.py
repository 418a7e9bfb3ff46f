"""Trajectory accuracy metrics, computed with evo (https://github.com/MichaelGrupp/evo).

What :func:`evaluate` computes (all through ``evo.core``; nothing here re-implements a metric):

* Association: estimate and ground truth are paired by time stamp with
  ``evo.core.sync.associate_trajectories`` (nearest stamp, at most ``max_time_diff`` s apart;
  0.01 s as in the evo command-line tools). Poses that are NaN are dropped first.
* ATE: Umeyama alignment of the matched estimate onto the ground truth
  (``PoseTrajectory3D.align``), then the RMSE of the translation part of ``metrics.APE``, in metres:
  ``ate_rmse_se3`` (rigid alignment) and ``ate_rmse_sim3`` (with scale; ``sim3_scale`` is the scale
  applied to the estimate). ``ate_rmse_sim3`` equals ``evo_ape tum GT EST -as``.
* RPE: ``metrics.RPE`` over consecutive matched poses (delta = 1 frame) of the Sim(3)-aligned
  estimate (scale corrected, as ``evo_rpe ... -as -d 1 -u f``): RMSE of the translation part
  (``rpe_trans_rmse``, metres) and of the rotation angle (``rpe_rot_rmse_deg``, degrees).
* KITTI (``kitti=True``): ``metrics.RPE`` with ``delta`` in metres of ground-truth path length,
  ``all_pairs=True`` and pairs chosen on the reference, for each length 100, 200, ..., 800 m, on the
  Sim(3)-aligned estimate. Each pair's translation error (m) and rotation angle (deg) is divided by its
  nominal length and all pairs of all lengths are averaged, as in the KITTI devkit:
  ``kitti_t_err_pct`` (%) and ``kitti_r_err_deg_per_100m``. Differences from the devkit: pairs start at
  every frame (devkit: every 10th) and the end frame is the one whose path length is nearest to the
  nominal one (within 1 %; devkit: the first frame beyond it). None when the trajectory is shorter
  than 100 m.
* Short KITTI-format runs (``kitti=True`` and no 100 m segment): segment errors over 10 m in the KITTI
  units, ``rpe_10m_t_err_pct`` (%) and ``rpe_10m_r_err_deg_per_100m``, by the devkit's own rule (frames
  10 m apart are rarely within 1 % of 10 m at driving speed): a segment starts at every frame and ends at
  the first frame whose ground-truth path distance exceeds the start's by 10 m; its error
  ``(T_est_first^-1 T_est_last)^-1 (T_gt_first^-1 T_gt_last)`` is divided by the nominal 10 m. Computed
  on the Sim(3)-aligned estimate like the KITTI figures.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
from pathlib import Path

import numpy as np
from evo.core import metrics, sync
from evo.core.filters import FilterException
from evo.core.geometry import GeometryException
from evo.core.trajectory import PoseTrajectory3D

from slam.atomic import write_bytes_atomic, write_text_atomic
from slam.errors import DatasetError
from slam.geometry import rotation_angle, rotation_part
from slam.trajectory import Trajectory, detect_format, read_trajectory

KITTI_LENGTHS_M = (100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0)
SHORT_LENGTH_M = 10.0
KITTI_REL_TOLERANCE = 0.01
DEFAULT_MAX_TIME_DIFF = 0.01


def to_evo(traj: Trajectory, name: str = "") -> PoseTrajectory3D:
    """evo trajectory of the finite poses of ``traj`` (a similarity scale in the rotation is divided out)."""
    traj = traj.finite()
    if len(traj) == 0:
        raise DatasetError(f"{name or 'trajectory'} has no finite poses")
    poses = traj.poses.copy()
    poses[:, :3, :3] = rotation_part(poses)
    return PoseTrajectory3D(poses_se3=list(poses), timestamps=traj.timestamps.copy(), name=name)


def _aligned(est: PoseTrajectory3D, gt: PoseTrajectory3D, correct_scale: bool):
    """Copy of ``est`` aligned onto ``gt`` by Umeyama; also returns (R 3x3, t 3, s)."""
    est = copy.deepcopy(est)
    try:
        r, t, s = est.align(gt, correct_scale=correct_scale)
    except GeometryException as err:
        raise DatasetError(f"cannot align the estimate to the ground truth ({err})") from None
    return est, np.asarray(r), np.asarray(t), float(s)


def _rmse(metric: metrics.PE, gt: PoseTrajectory3D, est: PoseTrajectory3D) -> float:
    metric.process_data((gt, est))
    return float(metric.get_statistic(metrics.StatisticsType.rmse))


def kitti_segment_errors(gt: PoseTrajectory3D, est: PoseTrajectory3D, lengths: tuple[float, ...] = KITTI_LENGTHS_M
                         ) -> tuple[float | None, float | None, int]:
    """(t_err %, r_err deg/100 m, number of segments) over sub-trajectories of ``lengths`` metres (module doc)."""
    t_rel, r_rel = [], []
    for length in lengths:
        per_length = {}
        for relation in (metrics.PoseRelation.translation_part, metrics.PoseRelation.rotation_angle_deg):
            rpe = metrics.RPE(
                relation, delta=length, delta_unit=metrics.Unit.meters, rel_delta_tol=KITTI_REL_TOLERANCE,
                all_pairs=True, pairs_from_reference=True,
            )
            try:
                rpe.process_data((gt, est))
            except FilterException:  # no pair of this length
                break
            per_length[relation] = np.asarray(rpe.error) / length
        if len(per_length) == 2:
            t_rel.append(per_length[metrics.PoseRelation.translation_part])
            r_rel.append(per_length[metrics.PoseRelation.rotation_angle_deg])
    if not t_rel:
        return None, None, 0
    t_all, r_all = np.concatenate(t_rel), np.concatenate(r_rel)
    return float(t_all.mean() * 100.0), float(r_all.mean() * 100.0), int(t_all.size)


def devkit_segment_errors(gt: PoseTrajectory3D, est: PoseTrajectory3D, length: float, step: int = 1
                          ) -> tuple[float | None, float | None, int]:
    """(t_err %, r_err deg/100 m, number of segments) of ``length``-metre segments by the KITTI devkit rule
    (module doc); segments start every ``step`` frames."""
    gt_poses, est_poses = np.asarray(gt.poses_se3), np.asarray(est.poses_se3)
    steps = np.linalg.norm(np.diff(gt_poses[:, :3, 3], axis=0), axis=1)
    dist = np.concatenate([[0.0], np.cumsum(steps)])
    t_rel, r_rel = [], []
    ends = np.searchsorted(dist, dist + length, side="right")  # first frame whose distance exceeds start + length
    for first in range(0, len(dist), step):
        last = int(ends[first])
        if last == len(dist):
            break
        err = np.linalg.inv(np.linalg.inv(est_poses[first]) @ est_poses[last]) @ (
            np.linalg.inv(gt_poses[first]) @ gt_poses[last])
        angle = np.degrees(rotation_angle(err))
        t_rel.append(np.linalg.norm(err[:3, 3]) / length)
        r_rel.append(angle / length)
    if not t_rel:
        return None, None, 0
    return float(np.mean(t_rel) * 100.0), float(np.mean(r_rel) * 100.0), len(t_rel)


def associate(est: Trajectory, gt: Trajectory, max_time_diff: float = DEFAULT_MAX_TIME_DIFF):
    """(gt, est) evo trajectories of the matched poses (nearest time stamps within ``max_time_diff``)."""
    gt_evo, est_evo = to_evo(gt, "ground truth"), to_evo(est, "estimate")
    try:
        return sync.associate_trajectories(gt_evo, est_evo, max_diff=max_time_diff)
    except sync.SyncException as err:
        raise DatasetError(f"cannot associate the estimate with the ground truth by time stamp ({err})") from None


def evaluate(
    est: Trajectory, gt: Trajectory, kitti: bool = False, max_time_diff: float = DEFAULT_MAX_TIME_DIFF
) -> dict:
    """Accuracy of ``est`` against ``gt`` (see the module docstring). Returns a JSON-ready dict."""
    gt_m, est_m = associate(est, gt, max_time_diff)
    n = gt_m.num_poses
    if n < 3:
        raise DatasetError(f"only {n} poses of the estimate match the ground truth in time; need at least 3")
    translation = metrics.PoseRelation.translation_part
    est_se3, *_ = _aligned(est_m, gt_m, correct_scale=False)
    est_sim3, _, _, scale = _aligned(est_m, gt_m, correct_scale=True)
    result = {
        "ate_rmse_se3": _rmse(metrics.APE(translation), gt_m, est_se3),
        "ate_rmse_sim3": _rmse(metrics.APE(translation), gt_m, est_sim3),
        "sim3_scale": scale,
        "rpe_trans_rmse": _rmse(metrics.RPE(translation, 1, metrics.Unit.frames), gt_m, est_sim3),
        "rpe_rot_rmse_deg": _rmse(
            metrics.RPE(metrics.PoseRelation.rotation_angle_deg, 1, metrics.Unit.frames), gt_m, est_sim3
        ),
        "n_matched": int(n),
        "n_estimate": int(len(est.finite())),
        "n_ground_truth": int(len(gt.finite())),
        "gt_path_length_m": float(gt_m.path_length),
    }
    if kitti:
        t_err, r_err, n_segments = kitti_segment_errors(gt_m, est_sim3)
        result.update(kitti_t_err_pct=t_err, kitti_r_err_deg_per_100m=r_err, kitti_n_segments=n_segments)
        if n_segments == 0:
            t_err, r_err, n_segments = devkit_segment_errors(gt_m, est_sim3, SHORT_LENGTH_M)
            result.update(rpe_10m_t_err_pct=t_err, rpe_10m_r_err_deg_per_100m=r_err, rpe_10m_n_segments=n_segments)
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in result.items()}


_LABELS = {
    "ate_rmse": ("ATE RMSE, chosen alignment", "m"),
    "alignment": ("alignment", ""),
    "ate_rmse_se3": ("ATE RMSE, SE(3) aligned", "m"),
    "ate_rmse_sim3": ("ATE RMSE, Sim(3) aligned", "m"),
    "sim3_scale": ("Sim(3) scale", ""),
    "rpe_trans_rmse": ("RPE translation RMSE (1 frame)", "m"),
    "rpe_rot_rmse_deg": ("RPE rotation RMSE (1 frame)", "deg"),
    "kitti_t_err_pct": ("KITTI t_err (100-800 m)", "%"),
    "kitti_r_err_deg_per_100m": ("KITTI r_err (100-800 m)", "deg/100m"),
    "kitti_n_segments": ("KITTI segments", ""),
    "rpe_10m_t_err_pct": ("t_err over 10 m segments", "%"),
    "rpe_10m_r_err_deg_per_100m": ("r_err over 10 m segments", "deg/100m"),
    "rpe_10m_n_segments": ("10 m segments", ""),
    "n_matched": ("matched poses", ""),
    "n_estimate": ("estimated poses", ""),
    "n_ground_truth": ("ground-truth poses", ""),
    "gt_path_length_m": ("ground-truth path length", "m"),
}


def format_table(metrics_: dict) -> str:
    """A two-column plain-text table of the metrics (known keys with labels and units, then the rest)."""
    keys = [k for k in _LABELS if k in metrics_] + [k for k in metrics_ if k not in _LABELS]
    rows = []
    for key in keys:
        label, unit = _LABELS.get(key, (key, ""))
        value = metrics_[key]
        if value is None:
            text = "n/a"
        elif isinstance(value, float):
            text = f"{value:.6f}"
        else:
            text = str(value)
        rows.append((label, f"{text} {unit}".rstrip()))
    width = max((len(label) for label, _ in rows), default=0)
    return "\n".join(f"{label:<{width}}  {text}" for label, text in rows)


def plot_trajectories(est: Trajectory, gt: Trajectory, png_path: str | Path,
                      max_time_diff: float = DEFAULT_MAX_TIME_DIFF) -> None:
    """Top-down PNG of the ground truth and the Sim(3)-aligned estimate (all poses of both).

    The view drops the world axis along which the ground truth varies least. Written atomically.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    gt_m, est_m = associate(est, gt, max_time_diff)
    _, r, t, s = _aligned(est_m, gt_m, correct_scale=True)
    gt_xyz = gt.finite().positions
    est_xyz = s * est.finite().positions @ r.T + t
    axes = sorted(np.argsort(gt_xyz.std(axis=0))[1:])
    names = "xyz"

    fig = Figure(figsize=(6, 6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(gt_xyz[:, axes[0]], gt_xyz[:, axes[1]], "-", color="0.3", label="ground truth")
    ax.plot(est_xyz[:, axes[0]], est_xyz[:, axes[1]], "-", color="tab:blue", label="estimate (Sim(3) aligned)")
    ax.plot(gt_xyz[0, axes[0]], gt_xyz[0, axes[1]], "o", color="0.3", label="start")
    ax.set_xlabel(f"{names[axes[0]]} [m]")
    ax.set_ylabel(f"{names[axes[1]]} [m]")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    write_bytes_atomic(png_path, buffer.getvalue())


#: ``--align`` choices of ``slam eval`` (evo: ``-a`` = se3, ``-as`` = sim3, ``--align_origin`` = origin).
ALIGNMENTS = ("se3", "sim3", "origin", "none")
EVAL_METRICS_FILE = "eval_metrics.json"
EVAL_PLOT_FILE = "eval_trajectories.png"


def ate_with_alignment(est: Trajectory, gt: Trajectory, align: str,
                       max_time_diff: float = DEFAULT_MAX_TIME_DIFF) -> float:
    """ATE RMSE (m) of the matched poses after the chosen alignment (one of :data:`ALIGNMENTS`).

    'se3'/'sim3': Umeyama without/with scale; 'origin': the first matched estimate pose is moved onto the
    first ground-truth pose (evo's ``align_origin``); 'none': the poses as they are.
    """
    if align not in ALIGNMENTS:
        raise DatasetError(f"unknown alignment '{align}' (known: {', '.join(ALIGNMENTS)})", "--align")
    gt_m, est_m = associate(est, gt, max_time_diff)
    if align in ("se3", "sim3"):
        est_m, *_ = _aligned(est_m, gt_m, correct_scale=align == "sim3")
    elif align == "origin":
        est_m = copy.deepcopy(est_m)
        est_m.align_origin(gt_m)
    return _rmse(metrics.APE(metrics.PoseRelation.translation_part), gt_m, est_m)


def run_eval(est_path: str | Path, gt_path: str | Path, out_dir: str | Path, fmt: str = "auto",
             kitti: bool | None = None, max_time_diff: float = DEFAULT_MAX_TIME_DIFF,
             align: str = "sim3") -> dict:
    """Evaluate trajectory files, print the table, write ``eval_metrics.json`` and ``eval_trajectories.png``.

    The file names differ from a run's own ``metrics.json``, so evaluating a run's trajectory in its
    folder never overwrites what ``slam run`` wrote.

    Args:
        est_path, gt_path: TUM or KITTI files (KITTI files get line-index time stamps).
        out_dir: created if missing.
        fmt: 'tum', 'kitti' or 'auto' (per file, from the number of values per line).
        kitti: add the KITTI segment metrics; None = when either file is in KITTI format.
        max_time_diff: largest time-stamp difference (s) of associated poses (evo's ``--t_max_diff``).
        align: alignment of the extra ``ate_rmse`` entry (one of :data:`ALIGNMENTS`); the SE(3) and
            Sim(3) ATE are always reported.
    Returns:
        The metrics (as written to ``eval_metrics.json``), plus the two input paths.
    """
    formats = [detect_format(p) if fmt == "auto" else fmt for p in (est_path, gt_path)]
    est = read_trajectory(est_path, formats[0])
    gt = read_trajectory(gt_path, formats[1])
    if kitti is None:
        kitti = "kitti" in formats
    with _naming_inputs(est_path, gt_path):
        result = {"alignment": align, "ate_rmse": ate_with_alignment(est, gt, align, max_time_diff)}
        result.update(evaluate(est, gt, kitti=kitti, max_time_diff=max_time_diff))
    result.update(estimate=str(est_path), ground_truth=str(gt_path), t_max_diff=max_time_diff)
    print(format_table(result))
    out_dir = Path(out_dir)
    write_text_atomic(out_dir / EVAL_METRICS_FILE, json.dumps(result, indent=2) + "\n")
    with _naming_inputs(est_path, gt_path):
        plot_trajectories(est, gt, out_dir / EVAL_PLOT_FILE, max_time_diff=max_time_diff)
    return result


@contextlib.contextmanager
def _naming_inputs(est_path: str | Path, gt_path: str | Path):
    """Errors about the pair (association, alignment) name both files."""
    try:
        yield
    except DatasetError as err:
        if err.path is not None:
            raise
        raise DatasetError(f"{err.problem} (estimate: {est_path}; ground truth: {gt_path})") from None
