"""Tests of sub-pixel projective association, loop verification (graph prior / pair hypotheses, observability)
and the global-alignment safeguard, on the synthetic box room."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from backends import BackendConfig
from slam import geometry
from backends import global_alignment as ga_module
from backends.config import KeyframeConfig, LoopClosureConfig
from backends.engine import BackendEngine, KeyframeJob
from backends.global_alignment import observability
from backends.keyframer import Keyframer
from backends.loop_closure import LoopCloser, check_geometry
from backends.projective import associate, consistency_error, prepare_view
from slam.types import Keyframe, PairEstimate
from tests.backends.synthetic import FakeFrontend, loop_trajectory, make_frames


@pytest.fixture(scope="module")
def room_keyframes():
    """Keyframes every 4th pose of a 120-pose loop, pointmaps at stride 2 of 96x128 renders."""
    poses = loop_trajectory(120)[::4]
    frames = make_frames(poses, 96, 128)
    fe = FakeFrontend()
    kfr = Keyframer(KeyframeConfig(stride=2))
    return poses, frames, [kfr.make_keyframe(i, f, fe.step(f), f.gt_pose) for i, f in enumerate(frames)]


def _perturb(T: np.ndarray, rot_deg: float, trans: tuple[float, float, float]) -> np.ndarray:
    dT = geometry.make_sim3(Rotation.from_euler("y", rot_deg, degrees=True).as_matrix(), trans)
    return dT @ T


def _plane_keyframe(kf_id: int, tilt_deg: float = 30.0) -> Keyframe:
    """A 24x32 pointmap of a tilted plane 2 m ahead (camera frame)."""
    h, w = 24, 32
    K = np.array([[30.0, 0, 15.5], [0, 30.0, 11.5], [0, 0, 1]])
    v, u = np.mgrid[0:h, 0:w]
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones((h, w))], -1)
    n = np.array([np.sin(np.radians(tilt_deg)), 0.0, -np.cos(np.radians(tilt_deg))])  # plane n.x = -2 cos
    t = (-2.0 * np.cos(np.radians(tilt_deg))) / (rays @ n)
    pts = (rays * t[..., None]).astype(np.float32)
    return Keyframe(id=kf_id, frame_index=kf_id, timestamp=0.0, points=pts, confidence=np.ones((h, w), np.float32),
                    colors=np.zeros((h, w, 3), np.uint8), K=K, pose=np.eye(4), frontend_pose=np.eye(4), metric=True)


# ---------------------------------------------------------------------------------------------- association
def test_subpixel_association_is_exact_on_a_plane():
    kf = _plane_keyframe(0)
    view = prepare_view(kf, 5000, 0.0)
    # the same plane seen from a camera moved sideways by a fraction of a grid cell: every point lands
    # between grid samples, and the interpolated surface point must lie on the plane (zero residual)
    T = geometry.make_sim3(np.eye(3), [0.013, -0.007, 0.0])
    src = prepare_view(kf, 5000, 0.0)
    src.grid = geometry.transform_points(geometry.inverse_pose(T), view.grid)  # the plane in the moved camera's frame
    c = associate(src, view, T, np.eye(4), max_distance=0.05)
    assert len(c) > 0.8 * c.n_samples
    r = np.einsum("mi,mi->m", c.normal, c.y_dst - c.y_src)
    assert np.abs(r).max() < 1e-6 and np.linalg.norm(c.y_dst - c.y_src, axis=1).max() < 1e-5
    err_true, n_true = consistency_error({0: src, 1: view}, {0: T, 1: np.eye(4)}, [(0, 1)], 0.01)
    err_off, _ = consistency_error({0: src, 1: view}, {0: _perturb(T, 0.0, (0.0, 0.0, 0.03)), 1: np.eye(4)},
                                   [(0, 1)], 0.01)
    assert n_true > 0 and err_true < 1e-8 and err_off > 0.5


def test_observability_flags_a_plane(room_keyframes):
    _, _, kfs = room_keyframes
    plane = _plane_keyframe(0)
    from backends.global_alignment import align_pair
    from backends.loop_closure import _REFINE

    _, plane_stats = align_pair(plane, plane, np.eye(4), _REFINE[1], 0.0, False)
    _, room_stats = align_pair(kfs[0], kfs[1], geometry.relative_pose(kfs[0].pose, kfs[1].pose), _REFINE[1], 0.0, False)
    # a single plane leaves 3 directions free; the room's corners and boxes pin them
    assert plane_stats["observability"] < 1e-6 < room_stats["observability"]
    assert observability(np.zeros((7, 7)), 2.0, 6) == 0.0


# ---------------------------------------------------------------------------------------------- verification
def test_geometric_check_accepts_true_and_rejects_wrong_hypotheses(room_keyframes):
    poses, _, kfs = room_keyframes
    cfg = LoopClosureConfig()
    a, b = kfs[10], kfs[12]  # a corner with a box: every direction constrained
    T_true = geometry.relative_pose(a.pose, b.pose)
    ok = check_geometry(a, b, _perturb(T_true, 1.0, (0.02, 0.0, -0.02)), cfg, 0.0, use_sim3=False)
    assert ok.accepted and ok.inlier_ratio > 0.9
    err = geometry.relative_pose(T_true, ok.T_ab)
    assert np.linalg.norm(err[:3, 3]) < 0.01 and np.degrees(geometry.rotation_angle(geometry.rotation_of(err))) < 0.3
    # a hypothesis far off (0.8 m, 25 deg) or keyframes that do not overlap are rejected
    assert not check_geometry(a, b, _perturb(T_true, 25.0, (0.8, 0.0, 0.3)), cfg, 0.0, use_sim3=False).accepted
    far = check_geometry(kfs[0], kfs[15], geometry.relative_pose(kfs[0].pose, kfs[15].pose), cfg, 0.0, use_sim3=False)
    assert not far.accepted


def test_graph_prior_first_then_pair_estimate(room_keyframes):
    poses, frames, kfs = room_keyframes
    a, b = kfs[10], kfs[12]
    T_true = geometry.relative_pose(a.pose, b.pose)
    drifted = _perturb(T_true, 0.5, (0.01, 0.0, 0.01))

    def closer(**kw) -> tuple[LoopCloser, FakeFrontend]:
        fe = FakeFrontend()
        return LoopCloser(LoopClosureConfig(**kw), KeyframeConfig(), fe, use_sim3=False), fe

    # a well-conditioned prior is verified without asking the frontend
    lc, fe = closer()
    res = lc.verify(a, b, drifted)
    assert res.accepted and res.info["hypothesis"] == "graph" and fe.pair_calls == 0
    # demanding more observability than the geometry has: the prior is not trusted, the pair estimate decides
    lc, fe = closer(min_observability=0.9)
    res = lc.verify(a, b, drifted)
    assert res.accepted and res.info["hypothesis"] == "pair" and fe.pair_calls == 1
    # a prior far off is rejected and the pair estimate recovers the loop; without pair estimates it is lost
    wrong = _perturb(T_true, 30.0, (1.0, 0.0, 0.5))
    lc, fe = closer()
    assert lc.verify(a, b, wrong).info["hypothesis"] == "pair" and fe.pair_calls == 1
    lc, fe = closer(pair_estimate=False)
    res = lc.verify(a, b, wrong)
    assert not res.accepted and fe.pair_calls == 0


class _DenseFrontend(FakeFrontend):
    """Fake frontend whose dense refinement returns a fixed answer (and counts its calls)."""

    def __init__(self, answer: np.ndarray | None):
        super().__init__()
        self.answer = answer
        self.refine_calls = 0

    def refine_pair(self, a, b, T_ab):
        self.refine_calls += 1
        return None if self.answer is None else PairEstimate(T_ab=self.answer, confidence=0.9)


def test_dense_refinement_of_the_frontend_decides_the_loop_measurement(room_keyframes):
    _, _, kfs = room_keyframes
    a, b = kfs[10], kfs[12]
    T_true = geometry.relative_pose(a.pose, b.pose)
    start = _perturb(T_true, 1.0, (0.02, 0.0, -0.02))
    # the frontend's answer (a 4 mm, 0.2 deg nudge of the truth: within reach, and distinguishable from
    # what point alignment finds on its own) becomes the measurement
    answer = _perturb(T_true, 0.2, (0.004, 0.0, 0.0))
    fe = _DenseFrontend(answer)
    res = check_geometry(a, b, start, LoopClosureConfig(), 0.0, use_sim3=False, frontend=fe)
    assert res.accepted and res.info["dense"] == "used" and fe.refine_calls == 1
    np.testing.assert_allclose(res.T_ab, answer, atol=1e-12)
    # an answer that jumps far from the point-refined hypothesis is not trusted
    fe = _DenseFrontend(_perturb(T_true, 20.0, (0.8, 0.0, 0.0)))
    res = check_geometry(a, b, start, LoopClosureConfig(), 0.0, use_sim3=False, frontend=fe)
    assert res.accepted and res.info["dense"] == "rejected (moved too far)"
    assert np.linalg.norm(geometry.relative_pose(T_true, res.T_ab)[:3, 3]) < 0.01
    # no answer, switched off, or keyframes that are not metric: the point-refined hypothesis stays
    fe = _DenseFrontend(None)
    assert check_geometry(a, b, start, LoopClosureConfig(), 0.0, False, frontend=fe).info["dense"] == "none"
    fe = _DenseFrontend(answer)
    off = check_geometry(a, b, start, LoopClosureConfig(dense_refine=False), 0.0, False, frontend=fe)
    assert fe.refine_calls == 0 and "dense" not in off.info
    up_to_scale = dataclasses.replace(b, metric=False)
    res = check_geometry(a, up_to_scale, start, LoopClosureConfig(), 0.0, False, frontend=fe)
    assert fe.refine_calls == 0 and res.info["dense"] == "not applicable"
    # a frontend without the hook (duck-typed) is fine too
    assert check_geometry(a, b, start, LoopClosureConfig(), 0.0, False, frontend=FakeFrontend()).accepted


# ---------------------------------------------------------------------------------------------- safeguard
def _engine_with_odometry(kfs: list[Keyframe], use_sim3: bool = False, cfg: BackendConfig | None = None,
                          odometry_error: dict[int, np.ndarray] | None = None) -> BackendEngine:
    """An engine fed ``kfs`` with odometry edges from their poses; ``odometry_error[i]`` (4x4) is applied to
    the measurement of the edge into keyframe i."""
    if cfg is None:
        cfg = BackendConfig(preset="full", sync=True)
        cfg.keyframe.stride = 2
    eng = BackendEngine(cfg, FakeFrontend(), use_sim3=use_sim3)
    for i, kf in enumerate(kfs):
        odo = None if i == 0 else geometry.relative_pose(kfs[i - 1].pose, kf.pose)
        if odo is not None and odometry_error and i in odometry_error:
            odo = odometry_error[i] @ odo
        eng.handle(KeyframeJob(kf, None if i == 0 else i - 1, odo))
    return eng


def test_alignment_safeguard_rejects_a_harmful_result(room_keyframes, monkeypatch):
    _, _, kfs = room_keyframes
    kfs = kfs[:12]
    eng = _engine_with_odometry(kfs)
    before = eng.graph.poses()
    real_optimise = ga_module._optimise

    def harmful(views, P, ids, *args, **kwargs):  # an alignment gone wrong: every other keyframe shifted
        out = real_optimise(views, P, ids, *args, **kwargs)
        for k in ids[1::2]:
            P[k] = _perturb(P[k], 1.0, (0.03, 0.02, 0.0))
        return out

    monkeypatch.setattr(ga_module, "_optimise", harmful)
    eng.run_global_alignment()
    stats = eng.last_alignment
    assert not stats["accepted"] and eng.counters["alignment_rejected"] == 1
    assert stats["heldout_error_after"] > stats["heldout_error_before"]
    assert all(np.allclose(eng.graph.poses()[k], before[k], atol=1e-6) for k in before)


def test_alignment_safeguard_accepts_correcting_a_wrong_odometry_edge(room_keyframes):
    """One odometry measurement is off by 6 cm, several of its sigmas (exact pointmaps otherwise): the
    alignment moves the keyframes back to where their points fit, violating that measurement, and is kept
    because the edge's points agree better (a wrong odometry edge corrected, not a chain broken)."""
    _, _, kfs = room_keyframes
    kfs = kfs[:12]
    cfg = BackendConfig(preset="full", sync=True)
    cfg.keyframe.stride = 2
    cfg.graph.odometry_sigma_trans = 0.002  # ~0.9 cm at this room's 4.5 m median depth
    eng = _engine_with_odometry(kfs, cfg=cfg, odometry_error={6: _perturb(np.eye(4), 0.0, (0.06, 0.0, 0.0))})
    eng.run_global_alignment()
    stats = eng.last_alignment
    assert stats["worst_odometry_residual"] > eng.cfg.global_alignment.max_odometry_residual
    assert stats["odometry_breaks"] == [] and stats["accepted"]
    P = eng.graph.poses()
    error = [np.linalg.norm(geometry.relative_pose(P[0], P[k])[:3, 3] - geometry.relative_pose(kfs[0].pose, kfs[k].pose)[:3, 3])
             for k in range(len(kfs))]
    assert max(error) < 0.01, error


def test_alignment_safeguard_accepts_an_improvement(room_keyframes):
    _, _, kfs = room_keyframes
    # odometry with a per-step error: alignment of the (exact) pointmaps must undo it and be accepted
    bent = []
    for i, kf in enumerate(kfs[:12]):
        pose = kf.pose if i == 0 else bent[-1].pose @ _perturb(geometry.relative_pose(kfs[i - 1].pose, kf.pose), 0.3,
                                                                (0.01, 0.0, 0.0))
        bent.append(dataclasses.replace(kf, pose=pose))
    eng = _engine_with_odometry(bent)
    eng.run_global_alignment()
    stats = eng.last_alignment
    assert stats["accepted"] and eng.counters["alignment_rejected"] == 0
    assert stats["heldout_error_after"] < stats["heldout_error_before"]
    assert stats["worst_odometry_residual"] < eng.cfg.global_alignment.max_odometry_residual


@pytest.mark.slow
def test_alignment_safeguard_rejects_harm_only_visible_where_the_loop_closes(room_keyframes, monkeypatch):
    """An alignment that fixes per-step odometry errors (short-range held-out pairs improve) but then bends
    the trajectory slowly, so that it no longer meets itself where the loop closes: the held-out far
    covisible pairs and the loop measurement catch it. (The bend, 0.4 deg more per keyframe, must undo more
    than the alignment fixed: the alignment itself closes the loop through the far pairs it uses.)"""
    from backends.pose_graph import Edge

    _, _, kfs = room_keyframes
    bent = []
    for i, kf in enumerate(kfs):
        pose = kf.pose if i == 0 else bent[-1].pose @ _perturb(geometry.relative_pose(kfs[i - 1].pose, kf.pose), 0.3,
                                                                (0.01, 0.0, 0.0))
        bent.append(dataclasses.replace(kf, pose=pose))
    eng = _engine_with_odometry(bent)
    last = len(kfs) - 1
    eng.add_loop_edge(Edge(0, last, geometry.relative_pose(kfs[0].pose, kfs[last].pose), eng._loop_sigmas(0, 1.0),
                           kind="loop", robust=True))
    eng.graph.update()
    real_optimise = ga_module._optimise

    def bend(views, P, ids, *args, **kwargs):  # right alignment, then a slow yaw drift along the second half
        out = real_optimise(views, P, ids, *args, **kwargs)
        for k in ids[len(ids) // 2:]:
            P[k] = _perturb(P[k], 0.4 * (k - len(ids) // 2), (0.0, 0.0, 0.0))
        return out

    monkeypatch.setattr(ga_module, "_optimise", bend)
    eng.cfg.global_alignment.max_odometry_residual = 1e3  # only the held-out pairs and the loop may object
    eng.run_global_alignment()
    stats = eng.last_alignment
    assert stats["heldout_error_after"] < stats["heldout_error_before"]  # the short-range check is fooled
    assert stats["far_pairs"] > 0 and stats["far_error_after"] > stats["far_error_before"]
    assert stats["loop_residual_after"] > stats["loop_residual_before"]
    assert not stats["accepted"] and eng.counters["alignment_rejected"] == 1


# ---------------------------------------------------------------------------------------------- covisible pairs
def test_covisible_pairs_find_where_the_loop_closes_and_respect_the_partner_cap(room_keyframes):
    poses, _, kfs = room_keyframes
    views = {kf.id: prepare_view(kf, 500, 0.0) for kf in kfs}
    P = {kf.id: kf.pose for kf in kfs}
    ids = sorted(P)
    every = ga_module.covisible_pairs(views, P, ids, set(), min_gap=4, min_visible=0.3)
    assert every and all(b - a >= 4 for a, b in every)
    # the loop closes: the last keyframes see what the first ones saw
    assert any(a <= 2 and b >= ids[-3] for a, b in every)
    capped = ga_module.covisible_pairs(views, P, ids, set(), min_gap=4, min_visible=0.3, max_partners=2)
    assert set(capped) <= set(every) and len(capped) < len(every)
    count: dict[int, int] = {}
    for a, b in capped:
        count[a] = count.get(a, 0) + 1
        count[b] = count.get(b, 0) + 1
    assert max(count.values()) <= 2
    # partners farthest apart in the stream are kept first: the longest-range pair survives the cap
    longest = max(every, key=lambda p: p[1] - p[0])
    assert longest in capped
    excluded = ga_module.covisible_pairs(views, P, ids, {longest}, min_gap=4, min_visible=0.3)
    assert longest not in excluded and len(excluded) == len(every) - 1


def test_covisibility_pre_test_loses_no_pair(room_keyframes):
    """The coarse pre-test only skips work: the pairs found are exactly those that a full test of every
    candidate pair (cameras within scene depth, at least 30 % of all samples visible) finds."""
    from backends.projective import associate, view_median_depth

    poses, _, kfs = room_keyframes
    views = {kf.id: prepare_view(kf, 2000, 0.0) for kf in kfs}
    P = {kf.id: kf.pose for kf in kfs}
    ids = sorted(P)
    coarse = views[ids[0]].with_sample(views[ids[0]].sample[::4])
    assert coarse.cell_ok is views[ids[0]].cell_ok and len(views[ids[0]].sample) == 4 * len(coarse.sample)
    found = ga_module.covisible_pairs(views, P, ids, set(), min_gap=4, min_visible=0.3)
    depth = {k: view_median_depth(views[k]) for k in ids}
    brute = []
    for i, a in enumerate(ids):
        for b in ids[i + 4:]:
            if np.linalg.norm(P[a][:3, 3] - P[b][:3, 3]) > max(depth[a], depth[b]):
                continue
            c = associate(views[a], views[b], P[a], P[b], ga_module.CONSISTENCY_GATE)
            if c.n_visible >= 0.3 * c.n_samples:
                brute.append((a, b))
    assert found == brute and found


def test_split_heldout_holds_out_every_kth_pair():
    pairs = [(i, i + 5) for i in range(10)]
    used, held = ga_module.split_heldout(pairs, 4)
    assert held == [(3, 8), (7, 12)] and sorted(used + held) == pairs and not set(used) & set(held)
    assert ga_module.split_heldout(pairs, 0) == (pairs, [])


def test_alignment_uses_covisible_pairs_and_holds_some_out(room_keyframes):
    from backends.config import GlobalAlignmentConfig
    from backends.global_alignment import align_keyframes
    from backends.pose_graph import Edge

    _, _, kfs = room_keyframes
    kf = {k.id: k for k in kfs}
    P = {k.id: k.pose for k in kfs}
    edges = [Edge(i, i + 1, geometry.relative_pose(P[i], P[i + 1]), np.ones(6)) for i in range(len(kfs) - 1)]
    on = align_keyframes(kf, P, edges, GlobalAlignmentConfig(iterations=0), 0.0, use_sim3=False)
    off = align_keyframes(kf, P, edges, GlobalAlignmentConfig(iterations=0, covisible=False), 0.0, use_sim3=False)
    # with covisible pairs on, the far pairs are split between the alignment (3 of 4) and the check (1 of 4)
    assert on.stats["pairs"] > off.stats["pairs"]
    assert 0 < on.stats["far_pairs"] < off.stats["far_pairs"]
    assert on.stats["pairs"] - off.stats["pairs"] + on.stats["far_pairs"] == off.stats["far_pairs"]


def test_se3_loop_check_accepts_a_fit_within_noise_but_sim3_does_not(room_keyframes, monkeypatch):
    """The engine's loop test: an SE(3) alignment may fit the loops worse than the pose graph as long as it
    fits them within their noise model (RMS whitened residual <= sqrt(6)); a Sim(3) one may not (there the
    loops carry the scale that points cannot observe)."""
    from backends.pose_graph import Edge

    _, _, kfs = room_keyframes
    kfs = kfs[:12]

    def accepted(sim3: bool, before: float, after: float) -> bool:
        eng = _engine_with_odometry(kfs, use_sim3=sim3)
        last = len(kfs) - 1
        eng.add_loop_edge(Edge(0, last, geometry.relative_pose(kfs[0].pose, kfs[last].pose),
                               eng._loop_sigmas(0, 1.0), kind="loop", robust=True))
        eng.graph.update()
        residuals = iter([before, after])
        monkeypatch.setattr(eng, "_loop_residual", lambda poses, kinds=("loop", "segment"):
                            next(residuals) if kinds != ("odometry",) else 0.0)
        eng.run_global_alignment()
        return eng.last_alignment["accepted"]

    assert accepted(False, 0.1, 1.5)  # 1.4 sigmas worse, but within sqrt(6) = 2.45
    assert not accepted(True, 0.1, 1.5)  # Sim(3): no worse than the pose graph (+0.1)
    assert accepted(True, 0.1, 0.15)
    assert not accepted(False, 0.1, 3.0)  # beyond the noise model


def test_alignment_stops_once_converged():
    """Two views of one plane from the same pose, the graph agreeing: nothing moves, so the Gauss-Newton
    loop stops after its first step instead of running every configured iteration."""
    from backends.config import GlobalAlignmentConfig
    from backends.global_alignment import align_keyframes
    from backends.pose_graph import Edge

    kfs = {0: _plane_keyframe(0), 1: _plane_keyframe(1)}
    P = {0: np.eye(4), 1: np.eye(4)}
    res = align_keyframes(kfs, P, [Edge(0, 1, np.eye(4), np.ones(6))], GlobalAlignmentConfig(iterations=15), 0.0,
                          use_sim3=False)
    assert res.stats["iterations_run"] == 1
    np.testing.assert_allclose(res.poses[1], np.eye(4), atol=1e-9)
