"""ATE of the SLAM backend on an RGB-D sequence with the ``rgbd`` frontend, for three backend settings:
odometry only, + loop closure, + loop closure + global alignment.

The frontend runs once; its outputs are cached in memory and replayed into one backend per setting (the
frontend's ``pair`` is still called live for loop verification). Besides whole-sequence ATE (SE(3) and
Sim(3) aligned), three figures that do not trust the reference's long-range accuracy are printed:

* fragment ATE (``--fragment N``): SE(3) ATE of every run of N frames aligned on its own, RMS over all
  frames. The ICL micro sequence's reference comes from Open3D's reconstruction system, which poses
  100-frame fragments separately; it jumps by ~2.6 cm / 1 deg between frames 99 and 100 and ~1.7 cm /
  0.75 deg between 199 and 200 (consecutive frames whose depth maps it misaligns by ~5 mm while odometry
  aligns them to ~0.5 mm).
* depth consistency: mean absolute depth difference (mm) between the full-resolution depth maps of
  overlapping keyframe pairs re-projected with the estimated poses (bilinear lookup, differences above 5 cm
  ignored). It needs no reference at all; the pair set is fixed by the first setting's poses.
* keypoint distance: median 3D distance (mm) between SIFT keypoints matched across a keyframe pair (mutual
  nearest neighbours, ratio test, smooth depth around the keypoint), each lifted with its own depth and
  brought into one camera with the estimated poses; matches further apart than 5 cm are mismatches and
  ignored. Mean over the pairs. No backend term uses SIFT, so this is an independent check of the poses
  that also sees sliding along surfaces, which depth consistency cannot.

With ``--steps`` a second table lists every pair of consecutive keyframes: camera distance and depth
consistency under each trajectory. It is purely local (two frames ~20 cm apart), so it shows where a
trajectory's step disagrees with the depth maps without any question of long-range drift.

A first row, ``reference``, scores the reference trajectory itself with the same two reference-free
figures (at the same keyframes), which tells how far its ~1 cm ATE can be trusted.

* distance to the depth optimum (cm, metric sequences): the backend's global alignment is started at the
  reference keyframe poses (held weakly at the reference's relative poses between consecutive keyframes)
  and run to convergence: the keyframe poses nearest the reference that make the keyframes' depth agree
  best. Each row's keyframe ATE (SE(3)) to those poses tells how far it is from what the depth measures;
  the ``reference`` row's figure is how far the reference itself is, a floor below which ATE against the
  reference rewards fitting the reference's own error.

Any TUM-layout RGB-D folder works. With ``--depth-noise L`` every depth map first gets sensor-like noise;
on the demo's exact renders that gives a noisy sequence with exact ground truth. ``--depth-quantum 0.001``
rounds depths to 1 mm steps as in ICL's files; on exact renders the ``reference`` row is then the floor of
the depth-consistency figure that exact poses reach with such depth::

    python tools/eval_backend_icl.py ../shared/data/icl_livingroom1_micro [--max-frames N] [--stride S]
        [--fragment 100] [--set keyframe.stride=4 --set frontend.rgbd.method=icp ...]
    slam demo --frames 300 --size 640x480 --out outputs/demo640
    python tools/eval_backend_icl.py outputs/demo640/data --depth-noise 1
    python tools/eval_backend_icl.py outputs/demo640/data --depth-quantum 0.001 --steps
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backends import BackendConfig, SlamBackend  # noqa: E402
from backends.global_alignment import align_keyframes  # noqa: E402
from backends.pose_graph import Edge  # noqa: E402
from slam import geometry  # noqa: E402
from frontends import create  # noqa: E402
from slam.datasets import open_dataset  # noqa: E402
from slam.datasets.base import DatasetConfig  # noqa: E402
from slam.evaluation import evaluate  # noqa: E402
from slam.trajectory import Trajectory  # noqa: E402
from slam.types import Frame  # noqa: E402

SETTINGS = {"odometry only": "odometry", "+ loop closure": "loops", "+ loop closure + alignment": "full"}
#: depth differences above this (m) are occlusions or misses, not misalignment
DEPTH_GATE = 0.05
#: keyframe pairs whose re-projection overlap is below this are not scored
MIN_OVERLAP = 0.3
#: matched keypoints further apart than this (m) are mismatches, not misalignment
KEYPOINT_GATE = 0.05
#: keyframe pairs with fewer matched keypoints within the gate are not scored
MIN_KEYPOINTS = 20
#: Gauss-Newton iterations (at most) of the alignment that finds the depth optimum
OPTIMUM_ITERATIONS = 50


def depth_consistency(frame_a, frame_b, T_ab: np.ndarray, stride: int = 2) -> tuple[float, float]:
    """(mean |depth difference| in m, overlap fraction) of frame b's full-size depth moved into frame a.

    ``T_ab`` is the pose of b's camera in a's camera frame; frames carry HxW depth (m) and K.
    """
    K, da, db = frame_a.K, frame_a.depth, frame_b.depth
    h, w = db.shape
    v, u = np.mgrid[0:h:stride, 0:w:stride]
    z = db[v, u]
    ok = z > 0
    x = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], -1)[ok]
    p = x @ T_ab[:3, :3].T + T_ab[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        pu = K[0, 0] * p[:, 0] / p[:, 2] + K[0, 2]
        pv = K[1, 1] * p[:, 1] / p[:, 2] + K[1, 2]
    inside = (p[:, 2] > 0) & (pu >= 0) & (pu < w - 1) & (pv >= 0) & (pv < h - 1)
    pu, pv, pz = pu[inside], pv[inside], p[inside, 2]
    u0, v0 = pu.astype(int), pv.astype(int)
    c = np.stack([da[v0, u0], da[v0, u0 + 1], da[v0 + 1, u0], da[v0 + 1, u0 + 1]], 1)
    good = (c > 0).all(1) & (c.max(1) - c.min(1) < 0.02 * c.mean(1))
    fu, fv = pu - u0, pv - v0
    zi = (1 - fv) * ((1 - fu) * c[:, 0] + fu * c[:, 1]) + fv * ((1 - fu) * c[:, 2] + fu * c[:, 3])
    r = np.abs(zi - pz)[good]
    r = r[r < DEPTH_GATE]
    return (float(r.mean()) if len(r) else float("nan")), len(r) / max(int(ok.sum()), 1)


def keypoints_3d(frame, sift) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) SIFT keypoints lifted to 3D in the camera frame (m) and their (N, 128) descriptors.

    Keypoints without depth, or whose 5x5 neighbourhood (2 px steps) has a depth range above 1 % of the
    depth (edges, where the lifted point is ill-defined), are dropped.
    """
    import cv2

    grey = cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2GRAY)
    kps, desc = sift.detectAndCompute(grey, None)
    if not kps:
        return np.zeros((0, 3)), np.zeros((0, 128), np.float32)
    uv = np.array([k.pt for k in kps])
    h, w = frame.depth.shape
    iu = np.clip(np.round(uv[:, 0]).astype(int), 2, w - 3)
    iv = np.clip(np.round(uv[:, 1]).astype(int), 2, h - 3)
    window = np.stack([frame.depth[iv + dv, iu + du] for dv in (-2, 0, 2) for du in (-2, 0, 2)], 1)
    z = frame.depth[iv, iu]
    keep = (window > 0).all(1) & (window.max(1) - window.min(1) < 0.01 * z)
    K = frame.K
    xyz = np.stack([(uv[:, 0] - K[0, 2]) / K[0, 0] * z, (uv[:, 1] - K[1, 2]) / K[1, 1] * z, z], 1)
    return xyz[keep], desc[keep]


def keypoint_matches(feat_a, feat_b, ratio: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest-neighbour SIFT matches passing the ratio test: ((M, 3) points of a, (M, 3) of b)."""
    import cv2

    (xa, da), (xb, db) = feat_a, feat_b
    if len(xa) < 2 or len(xb) < 2:
        return np.zeros((0, 3)), np.zeros((0, 3))
    matcher = cv2.BFMatcher()
    forward = [m for m, n in matcher.knnMatch(db, da, k=2) if m.distance < ratio * n.distance]
    backward = {m.queryIdx: m.trainIdx for m, _ in matcher.knnMatch(da, db, k=2)}
    mutual = [(m.trainIdx, m.queryIdx) for m in forward if backward.get(m.trainIdx) == m.queryIdx]
    if not mutual:
        return np.zeros((0, 3)), np.zeros((0, 3))
    ia, ib = np.array(mutual).T
    return xa[ia], xb[ib]


def keypoint_distance(matches: tuple[np.ndarray, np.ndarray], T_ab: np.ndarray) -> tuple[float, int]:
    """(median 3D distance in m, count) of matched keypoints within ``KEYPOINT_GATE`` once b's are moved
    into a's camera by ``T_ab`` (the pose of b's camera in a's camera frame)."""
    xa, xb = matches
    d = np.linalg.norm(geometry.transform_points(T_ab, xb) - xa, axis=1)
    d = d[d < KEYPOINT_GATE]
    return (float(np.median(d)) if len(d) else float("nan")), len(d)


def fragment_ate(est: Trajectory, gt: Trajectory, fragment: int) -> float:
    """RMS over all frames of the SE(3) ATE of consecutive ``fragment``-frame runs, each aligned alone."""
    sq, n = 0.0, 0
    for s in range(0, len(est.timestamps), fragment):
        part = slice(s, min(s + fragment, len(est.timestamps)))
        if part.stop - part.start < 3:
            continue
        res = evaluate(Trajectory(est.timestamps[part], est.poses[part]), Trajectory(gt.timestamps, gt.poses))
        sq += res["ate_rmse_se3"] ** 2 * res["n_matched"]
        n += res["n_matched"]
    return float(np.sqrt(sq / n)) if n else float("nan")


def run_config(path: str, overrides: list[str]):
    """The run configuration ``slam run --data PATH frontend=rgbd`` would use (all config layers), then the
    ``key=value`` ``overrides``: keys under ``frontend.`` or ``backend.`` as given, any other key is a
    backend key (``graph.max_residual=7`` means ``backend.graph.max_residual=7``)."""
    from slam.config import load_run_config

    dotted = [o if o.split(".", 1)[0] in ("frontend", "backend") else f"backend.{o}" for o in overrides]
    return load_run_config(data=path, overrides=["frontend=rgbd", *dotted])


def backend_settings(path: str, overrides: list[str]) -> dict:
    """The ``backend:`` section of :func:`run_config` as a plain dict."""
    from slam.config_loader import to_plain

    return to_plain(run_config(path, overrides).backend)


def add_depth_noise(frame: Frame, level: float, rng: np.random.Generator) -> Frame:
    """A copy of ``frame`` whose valid depths carry Gaussian noise of a structured-light sensor's axial
    model, ``level * (0.0012 + 0.0019 (z - 0.4)^2)`` m at depth z (Nguyen et al. 2012; level 1 ~ Kinect v1)."""
    depth = frame.depth.astype(np.float64)
    valid = depth > 0
    sigma = level * (0.0012 + 0.0019 * (depth[valid] - 0.4) ** 2)
    depth[valid] = np.maximum(depth[valid] + rng.normal(size=sigma.shape) * sigma, 1e-3)
    return dataclasses.replace(frame, depth=depth.astype(np.float32))


def quantize_depth(frame: Frame, quantum: float) -> Frame:
    """A copy of ``frame`` whose depths are rounded to multiples of ``quantum`` m (a sensor's or a file's
    depth steps; ICL's clean depth comes in 1 mm steps). Holes stay 0."""
    depth = np.round(frame.depth.astype(np.float64) / quantum) * quantum
    return dataclasses.replace(frame, depth=np.where(frame.depth > 0, depth, 0.0).astype(np.float32))


def run(path: str, max_frames: int | None = None, stride: int = 1, sync: bool = True, fragment: int = 100,
        overrides: dict | None = None, depth_noise: float = 0.0, seed: int = 0,
        frontend_config=None, depth_quantum: float = 0.0, pair_scores: bool = True) -> list[dict]:
    """Run the frontend once, then the three settings; one row per setting (ATE figures, backend metrics).

    ``overrides``: backend settings (a ``backend:`` section as a dict) applied under each preset.
    ``depth_quantum``: then depths are rounded to multiples of this (m; 0 = no rounding), see
    :func:`quantize_depth`. On exact renders the reference row then shows the floor of depth consistency.
    ``frontend_config``: the ``rgbd`` frontend's options (:class:`RgbdConfig`; default: its defaults).
    ``depth_noise``: level of :func:`add_depth_noise` applied to every frame first (0 = none).
    ``pair_scores``: False skips the reference-free figures (no ``reference`` row; NaN in those columns).
    """
    dataset = open_dataset(DatasetConfig(path=path, max_frames=max_frames, stride=stride))
    frontend = create("rgbd", frontend_config)
    rng = np.random.default_rng(seed)
    frames = (add_depth_noise(f, depth_noise, rng) if depth_noise > 0 else f for f in dataset)
    frames = (quantize_depth(f, depth_quantum) if depth_quantum > 0 else f for f in frames)
    stream, step_s = [], []
    for frame in frames:
        t0 = time.perf_counter()
        stream.append((frame, frontend.step(frame)))
        step_s.append(time.perf_counter() - t0)
    rows = evaluate_settings(stream, dataset.ground_truth(), frontend, sync, fragment, overrides, pair_scores)
    for r in rows:
        r["frontend_s"] = float(np.sum(step_s))
        r["frontend_median_fps"] = 1.0 / float(np.median(step_s))
    return rows


def evaluate_settings(stream: list, gt: Trajectory, frontend, sync: bool = True, fragment: int = 100,
                      overrides: dict | None = None, pair_scores: bool = True) -> list[dict]:
    """Replay ``stream`` ((Frame, FrontendOutput) pairs) into one backend per setting and evaluate each.

    Returns one row per setting, preceded by a ``reference`` row that scores the frames' reference poses
    (``Frame.gt_pose``) at the first setting's keyframes with the reference-free figures.
    """
    import cv2

    rows: list[dict] = []
    scorer: _PairScorer | None = None
    optimum: dict[int, np.ndarray] = {}
    for label, preset in SETTINGS.items():
        cfg = BackendConfig.from_dict({**(overrides or {}), "preset": preset, "sync": sync})
        backend = SlamBackend(cfg, frontend, metric=stream[0][1].metric)
        t0 = time.perf_counter()
        for frame, out in stream:
            backend.process(frame, out)
        backend.finalize()
        backend_s = time.perf_counter() - t0
        est = Trajectory(backend.timestamps(), backend.frame_poses())
        res = evaluate(est, gt)
        kfs = backend.keyframes()
        m = backend.metrics()
        backend.close()
        row = {"setting": label, "ate_se3_cm": 100 * res["ate_rmse_se3"],
               "ate_sim3_cm": 100 * res["ate_rmse_sim3"], "rpe_trans_cm": 100 * res["rpe_trans_rmse"],
               "rpe_rot_deg": res["rpe_rot_rmse_deg"], "fragment_ate_cm": 100 * fragment_ate(est, gt, fragment),
               "keyframes": m["keyframes"], "loops": m["loops_accepted"], "backend_s": backend_s, "metrics": m}
        if pair_scores:
            if scorer is None:  # pair sets fixed by the first setting's keyframes and poses
                scorer = _PairScorer([kf.frame for kf in kfs], [kf.pose for kf in kfs], cv2.SIFT_create(4000))
                if all(kf.frame.gt_pose is not None for kf in kfs):
                    reference = {kf.frame_index: kf.frame.gt_pose for kf in kfs}
                    if all(kf.metric for kf in kfs):
                        optimum = depth_optimum(kfs, overrides or {})
                    rows.append({"setting": "reference", "ate_se3_cm": 0.0, "ate_sim3_cm": 0.0,
                                 "fragment_ate_cm": 0.0, **scorer.score([kf.frame.gt_pose for kf in kfs]),
                                 "steps": scorer.steps([kf.frame.gt_pose for kf in kfs]),
                                 "to_depth_optimum_cm": keyframe_distance(reference, optimum),
                                 "keyframes": len(kfs), "loops": 0, "backend_s": 0.0, "metrics": {}})
            row.update(scorer.score([kf.pose for kf in kfs]), steps=scorer.steps([kf.pose for kf in kfs]),
                       to_depth_optimum_cm=keyframe_distance({kf.frame_index: kf.pose for kf in kfs}, optimum))
        rows.append(row)
    return rows


def depth_optimum(keyframes: list, settings: dict) -> dict[int, np.ndarray]:
    """Frame index -> 4x4 keyframe pose that makes the metric ``keyframes``' depth agree best, nearest the
    reference: the backend's global alignment (the ``full`` preset's options under ``settings``, at most
    :data:`OPTIMUM_ITERATIONS` iterations, SE(3)) started at the reference poses ``Frame.gt_pose``, with the
    reference's relative poses between consecutive keyframes as its (weak) prior edges."""
    cfg = BackendConfig.from_dict({**settings, "preset": "full"})
    options = dataclasses.replace(cfg.global_alignment, iterations=OPTIMUM_ITERATIONS)
    reference = {kf.id: kf.frame.gt_pose for kf in keyframes}
    ids = [kf.id for kf in keyframes]
    edges = [Edge(a, b, geometry.relative_pose(reference[a], reference[b]), np.full(6, 0.01))
             for a, b in zip(ids, ids[1:])]
    result = align_keyframes({kf.id: kf for kf in keyframes}, reference, edges, options,
                             cfg.keyframe.min_confidence, use_sim3=False)
    return {kf.frame_index: result.poses[kf.id] for kf in keyframes}


def keyframe_distance(poses: dict[int, np.ndarray], target: dict[int, np.ndarray]) -> float:
    """SE(3)-aligned RMS camera distance (cm) between two sets of keyframe poses keyed by frame index, over
    the frames both have (NaN with fewer than 3)."""
    common = sorted(set(poses) & set(target))
    if len(common) < 3:
        return float("nan")
    stamps = np.arange(len(common), dtype=np.float64)
    res = evaluate(Trajectory(stamps, np.stack([poses[i] for i in common])),
                   Trajectory(stamps, np.stack([target[i] for i in common])))
    return 100 * res["ate_rmse_se3"]


class _PairScorer:
    """Reference-free figures of a set of keyframe poses over fixed keyframe pairs.

    Depth pairs: re-projection overlap >= ``MIN_OVERLAP`` under ``poses``. Keypoint pairs: at least
    ``MIN_KEYPOINTS`` matches within ``KEYPOINT_GATE`` under ``poses``. Matches are computed once.
    """

    def __init__(self, frames: list, poses: list[np.ndarray], sift):
        self.frames = frames
        n = len(frames)
        self.depth_pairs = [(a, b) for a in range(n) for b in range(a + 1, n)
                            if depth_consistency(frames[a], frames[b], geometry.relative_pose(poses[a], poses[b]))[1]
                            >= MIN_OVERLAP]
        feats = [keypoints_3d(f, sift) for f in frames]
        self.matches = {}
        for a in range(n):
            for b in range(a + 1, n):
                m = keypoint_matches(feats[a], feats[b])
                if keypoint_distance(m, geometry.relative_pose(poses[a], poses[b]))[1] >= MIN_KEYPOINTS:
                    self.matches[(a, b)] = m

    def steps(self, poses: list[np.ndarray]) -> list[tuple[int, int, float, float]]:
        """(frame index a, frame index b, camera distance m, depth consistency m) of every pair of consecutive
        keyframes under ``poses``: a local check that needs no long-range accuracy of anything."""
        f = self.frames
        out = []
        for a in range(len(f) - 1):
            T_ab = geometry.relative_pose(poses[a], poses[a + 1])
            out.append((f[a].index, f[a + 1].index, float(np.linalg.norm(T_ab[:3, 3])),
                        depth_consistency(f[a], f[a + 1], T_ab)[0]))
        return out

    def score(self, poses: list[np.ndarray]) -> dict:
        """{'depth_consistency_mm', 'keypoint_distance_mm', 'depth_pairs', 'keypoint_pairs'} for ``poses``."""
        f = self.frames
        depth = [depth_consistency(f[a], f[b], geometry.relative_pose(poses[a], poses[b]))[0] for a, b in self.depth_pairs]
        kp = [keypoint_distance(m, geometry.relative_pose(poses[a], poses[b]))[0] for (a, b), m in self.matches.items()]
        return {"depth_consistency_mm": 1000 * float(np.nanmean(depth)) if depth else float("nan"),
                "keypoint_distance_mm": 1000 * float(np.nanmean(kp)) if kp else float("nan"),
                "depth_pairs": len(self.depth_pairs), "keypoint_pairs": len(self.matches)}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="TUM-layout RGB-D sequence folder")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--fragment", type=int, default=100, help="frames per fragment for the fragment ATE")
    parser.add_argument("--depth-noise", type=float, default=0.0,
                        help="add sensor-like depth noise first (1 ~ Kinect v1; exact-depth renders such as "
                             "the demo's then give a noisy sequence with exact ground truth)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the depth noise")
    parser.add_argument("--depth-quantum", type=float, default=0.0,
                        help="round depths to multiples of this (m) after any noise, e.g. 0.001 as in ICL")
    parser.add_argument("--steps", action="store_true",
                        help="also print every consecutive keyframe pair: camera distance and depth consistency")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="option override, e.g. keyframe.stride=4 (a backend key) or "
                             "frontend.rgbd.method=icp (repeatable)")
    args = parser.parse_args(argv)
    from slam.config_loader import to_plain

    cfg = run_config(args.path, args.overrides)
    rows = run(args.path, args.max_frames, args.stride, fragment=args.fragment, overrides=to_plain(cfg.backend),
               depth_noise=args.depth_noise, seed=args.seed, frontend_config=cfg.frontend.options(),
               depth_quantum=args.depth_quantum)
    print(f"frontend: {rows[0]['frontend_s']:.1f} s for the sequence; depth consistency over "
          f"{rows[0]['depth_pairs']} keyframe pairs, keypoint distance over {rows[0]['keypoint_pairs']}")
    print(f"{'setting':<28} {'ATE SE(3) cm':>13} {'ATE Sim(3) cm':>14} {'fragment ATE cm':>16} "
          f"{'depth cons. mm':>15} {'keypoint dist. mm':>18} {'to depth opt. cm':>17} {'keyframes':>10} {'loops':>6} "
          f"{'backend s':>10}")
    for r in rows:
        ate = ("{:>13} {:>14} {:>16}".format("-", "-", "-") if r["setting"] == "reference" else
               f"{r['ate_se3_cm']:>13.2f} {r['ate_sim3_cm']:>14.2f} {r['fragment_ate_cm']:>16.2f}")
        print(f"{r['setting']:<28} {ate} {r['depth_consistency_mm']:>15.3f} {r['keypoint_distance_mm']:>18.3f} "
              f"{r.get('to_depth_optimum_cm', float('nan')):>17.2f} {r['keyframes']:>10} {r['loops']:>6} "
              f"{r['backend_s']:>10.1f}")
    if args.steps:
        print_steps(rows)
    return rows


def print_steps(rows: list[dict]) -> None:
    """Table of consecutive keyframe pairs: camera distance (mm) / depth consistency (mm) per row."""
    print("\nconsecutive keyframes: camera distance mm / depth consistency mm")
    print(f"{'frames':<10}" + "".join(f"{r['setting'][:22]:>24}" for r in rows))
    for i, (a, b, _, _) in enumerate(rows[0]["steps"]):
        cells = "".join(f"{1000 * r['steps'][i][2]:>14.1f} / {1000 * r['steps'][i][3]:>5.2f}" for r in rows)
        print(f"{f'{a}-{b}':<10}{cells}")


if __name__ == "__main__":
    from slam.entry import tool_main

    sys.exit(tool_main(main))
