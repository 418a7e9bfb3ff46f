"""Backend tests on synthetic data: keyframes, pose graph, loops, robustness, global alignment, worker."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from backends import BackendConfig, SlamBackend
from slam import geometry
from backends.config import GlobalAlignmentConfig, GraphConfig, KeyframeConfig
from backends.global_alignment import align_keyframes
from backends.keyframer import Keyframer
from backends.pose_graph import Edge, PoseGraph
from slam.errors import ConfigError
from slam.types import FrontendOutput
from tests.backends.synthetic import FakeFrontend, ate, loop_trajectory, make_frames, run_backend


@pytest.fixture(scope="module")
def loop_scene():
    """A 150-frame loop (1.1 turns) with ground truth and rendered frames."""
    poses = loop_trajectory(150, turns=1.1)
    return poses, make_frames(poses)


def config(preset: str, **kwargs) -> BackendConfig:
    """Sync config for the tiny synthetic images (64x48): keyframe pointmaps at stride 2."""
    cfg = BackendConfig(preset=preset, sync=True, **kwargs)
    cfg.keyframe.stride = 2
    return cfg


def drifting() -> FakeFrontend:
    return FakeFrontend(drift_rot_deg=0.2, drift_scale=1.01)


# ---------------------------------------------------------------------------------------------- config
def test_config_from_dict_and_errors():
    cfg = BackendConfig.from_dict({"preset": "loops", "graph": {"type": "sim3"}, "keyframe": {"stride": 4}})
    assert cfg.loops_enabled and not cfg.alignment_enabled and cfg.use_sim3(metric=True)
    assert BackendConfig().use_sim3(metric=False) and not BackendConfig().use_sim3(metric=True)
    assert not BackendConfig(preset="odometry").loops_enabled
    with pytest.raises(ConfigError, match="backend.graph.kind"):
        BackendConfig.from_dict({"graph": {"kind": "sim3"}})
    with pytest.raises(ConfigError, match="preset"):
        BackendConfig.from_dict({"preset": "fast"})
    with pytest.raises(ConfigError, match="keyframe.stride"):
        BackendConfig.from_dict({"keyframe": {"stride": "four"}})


# ---------------------------------------------------------------------------------------------- keyframes
def _output(T: np.ndarray, segment: int = 0) -> FrontendOutput:
    h, w = 24, 32
    K = np.array([[30.0, 0, 15.5], [0, 30.0, 11.5], [0, 0, 1]])
    v, u = np.mgrid[0:h, 0:w]
    pts = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones((h, w))], -1) * 2.0
    return FrontendOutput(pose=T, points=pts.astype(np.float32), confidence=np.ones((h, w), np.float32), K=K,
                          segment=segment)


def _moved(t=(0, 0, 0), rot_deg=0.0) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("y", rot_deg, degrees=True).as_matrix()
    T[:3, 3] = t
    return T


def test_keyframe_thresholds():
    cfg = KeyframeConfig(translation=0.1, rotation_deg=10.0, min_overlap=0.7, stride=2)
    kfr = Keyframer(cfg)
    first = _output(np.eye(4))
    d = kfr.decide(first)
    assert d.is_keyframe and d.reason == "first"
    frames = make_frames(np.eye(4)[None], 24, 32)
    kf = kfr.make_keyframe(0, frames[0], first, np.eye(4))
    assert kf.points.shape == (12, 16, 3) and np.allclose(kf.K[0, 0], 15.0)
    kfr.observe(d, kf)
    # median depth is 2: translation 0.15 -> 0.075 < 0.1; 0.25 -> 0.125 > 0.1
    assert not kfr.decide(_output(_moved((0.15, 0, 0)))).is_keyframe
    assert kfr.decide(_output(_moved((0.25, 0, 0)))).reason == "translation"
    assert not kfr.decide(_output(_moved(rot_deg=5.0))).is_keyframe
    assert kfr.decide(_output(_moved(rot_deg=12.0))).reason == "rotation"
    assert kfr.decide(_output(np.eye(4), segment=1)).reason == "segment"
    # overlap alone: with huge motion thresholds, a 9 degree turn hides > 30 % of a narrow view
    kfr2 = Keyframer(KeyframeConfig(translation=10, rotation_deg=90, min_overlap=0.7))
    kfr2.observe(kfr2.decide(first), kfr2.make_keyframe(0, frames[0], first, np.eye(4)))
    d = kfr2.decide(_output(_moved(rot_deg=20.0)))
    assert d.reason == "overlap" and d.overlap < 0.7
    assert not kfr2.decide(_output(_moved(rot_deg=2.0))).is_keyframe


# ---------------------------------------------------------------------------------------------- pose graph
def _circle_graph(n: int, use_sim3: bool, drift_deg: float):
    gt = loop_trajectory(n)
    graph = PoseGraph(GraphConfig(), use_sim3)
    err = Rotation.from_euler("y", drift_deg, degrees=True).as_matrix()
    graph.add_node(0, gt[0])
    for i in range(1, n):
        meas = geometry.relative_pose(gt[i - 1], gt[i])
        meas[:3, :3] = err @ meas[:3, :3]
        graph.add_node(i, graph.poses()[i - 1] @ meas)
        graph.add_edge(Edge(i - 1, i, meas, graph.sigmas(0.5, 0.02, 0.01)))
        graph.update()
    return gt, graph


@pytest.mark.parametrize("use_sim3", [False, True])
def test_pose_graph_loop_recovers_drift(use_sim3):
    gt, graph = _circle_graph(40, use_sim3, drift_deg=0.5)
    before = ate(np.stack(list(graph.poses().values())), gt)
    graph.add_edge(Edge(0, 39, geometry.relative_pose(gt[0], gt[39]), graph.sigmas(0.5, 0.02, 0.01), kind="loop",
                        robust=True))
    graph.update(extra_iterations=3)
    graph.optimize_batch("consistency")
    after = ate(np.stack(list(graph.poses().values())), gt)
    assert len(graph.edges) == 40  # the true loop was kept
    assert after < 0.3 * before, (before, after)


def test_pose_graph_consistency_drops_false_loop():
    gt, graph = _circle_graph(40, False, drift_deg=0.1)
    graph.add_edge(Edge(0, 39, geometry.relative_pose(gt[0], gt[39]), graph.sigmas(1, 0.02, 0.02), kind="loop", robust=True))
    graph.add_edge(Edge(5, 25, np.eye(4), graph.sigmas(1, 0.02, 0.02), kind="loop", robust=True))  # wrong
    graph.update(extra_iterations=3)
    rejected = graph.optimize_batch("consistency", max_residual=5.0)
    assert [(e.a, e.b) for e in rejected] == [(5, 25)]


# ---------------------------------------------------------------------------------------------- full backend
def test_odometry_preset_chains_frontend_poses(loop_scene):
    poses, frames = loop_scene
    be = run_backend(config("odometry"), FakeFrontend(), frames)
    P = be.frame_poses()
    assert P.shape == (150, 4, 4)
    A = poses[0] @ np.linalg.inv(P[0])
    assert np.abs(A @ P - poses).max() < 1e-9
    assert 10 < len(be.keyframes()) < 60 and be.loops() == []


def test_sim3_blend_goes_the_given_fraction_of_the_way():
    A = geometry.make_sim3(Rotation.from_euler("z", 10, degrees=True).as_matrix(), [1.0, 0.0, 0.0], 2.0)
    D = geometry.make_sim3(Rotation.from_euler("x", 40, degrees=True).as_matrix(), [0.0, 0.4, 0.0], 4.0)
    B = A @ D
    out = geometry.blend(np.stack([A, B, A]), np.stack([B, B, B]), np.array([0.0, 1.0, 0.25]))
    np.testing.assert_allclose(out[0], A, atol=1e-12)
    np.testing.assert_allclose(out[1], B, atol=1e-12)
    quarter = geometry.relative_pose(A, out[2])
    assert float(geometry.similarity_scale(quarter)) == pytest.approx(4.0**0.25)
    assert np.degrees(geometry.rotation_angle(geometry.rotation_of(quarter))) == pytest.approx(10.0)
    np.testing.assert_allclose(quarter[:3, 3], [0.0, 0.1, 0.0], atol=1e-12)


def test_batched_sim3_helpers_match_the_single_ones():
    rng = np.random.default_rng(1)
    T = np.stack([geometry.make_sim3(Rotation.random(random_state=i).as_matrix(), rng.normal(size=3), s)
                  for i, s in enumerate([0.5, 1.0, 2.5])])
    np.testing.assert_allclose(geometry.inverse_pose(T), np.linalg.inv(T), atol=1e-12)
    np.testing.assert_allclose(geometry.rigid(T), np.stack([geometry.rigid(x) for x in T]), atol=1e-12)


def test_alignment_step_uses_the_sim3_group_exponential():
    from backends.global_alignment import _exp_many

    omega, v, log_s = np.array([0.02, -0.01, 0.03]), np.array([0.1, 0.2, -0.3]), 0.05
    T = _exp_many(np.array([[0.0] * 7, [*omega, 0, 0, 0, log_s], [*omega, *v, log_s]]))
    np.testing.assert_allclose(T[0], np.eye(4), atol=1e-15)
    expected = geometry.make_sim3(Rotation.from_rotvec(omega).as_matrix(), [0, 0, 0], np.exp(log_s))
    np.testing.assert_allclose(T[1], expected, atol=1e-12)
    # with translation, Exp couples it with rotation and scale (t = V v), and its log gives v back
    assert not np.allclose(T[2][:3, 3], v) and np.linalg.norm(T[2][:3, 3] - v) < 0.05
    import gtsam

    from backends.sim3 import to_gtsam

    back = gtsam.Similarity3.Logmap(to_gtsam(T[2], sim3=True))
    np.testing.assert_allclose(back, [*omega, *v, log_s], atol=1e-9)


def test_frames_blend_the_corrections_of_both_keyframes(loop_scene):
    poses, frames = loop_scene
    be = run_backend(config("odometry"), FakeFrontend(), frames[:40])
    kf_frames = [kf.frame_index for kf in be.keyframes()]
    a, b = kf_frames[1], kf_frames[2]
    before = be.frame_poses()
    # an optimisation that moves keyframe 2 (only) by 10 cm along x
    version, published = be.engine.published
    shifted = dict(published)
    shifted[2] = geometry.make_sim3(np.eye(3), [0.1, 0.0, 0.0]) @ published[2]
    be.engine.published = (version + 1, shifted)
    moved = be.frame_poses()[:, :3, 3] - before[:, :3, 3]
    frac = (np.arange(a, b) - a) / (b - a)
    np.testing.assert_allclose(moved[a:b, 0], 0.1 * frac, atol=1e-9)  # continuous from keyframe 1 to 2
    np.testing.assert_allclose(moved[b, 0], 0.1, atol=1e-9)
    np.testing.assert_allclose(moved[:a], 0.0, atol=1e-9)
    # without blending the frames before keyframe 2 stay with keyframe 1
    be.cfg.keyframe.blend_frames = False
    np.testing.assert_allclose(be.frame_poses()[:b], before[:b], atol=1e-9)


def test_odometry_noise_follows_the_frontends_pose_confidence(loop_scene):
    import dataclasses

    _, frames = loop_scene
    fe = FakeFrontend()
    be = SlamBackend(config("odometry"), fe, metric=True)
    for f in frames[:40]:
        out = fe.step(f)
        if f.index == 5:  # one weak frame inside the first odometry edges
            out = dataclasses.replace(out, pose_confidence=0.25)
        be.process(f, out)
    be.finalize()
    edges = [e for e in be.engine.graph.edges if e.kind == "odometry"]
    weak = [e for e in edges if be.keyframes()[e.a].frame_index < 5 <= be.keyframes()[e.b].frame_index]
    assert len(weak) == 1 and weak[0].info["confidence"] == 0.25
    nominal = be.engine._odometry_sigmas(weak[0].a)
    np.testing.assert_allclose(weak[0].sigmas, 4.0 * nominal)
    others = [e for e in edges if e is not weak[0]]
    assert others and all(e.info["confidence"] == 1.0 for e in others)
    np.testing.assert_allclose(others[0].sigmas, be.engine._odometry_sigmas(others[0].a))


def test_drift_loop_closure_and_alignment_cut_ate(loop_scene):
    poses, frames = loop_scene
    odo = ate(run_backend(config("odometry"), drifting(), frames).frame_poses(), poses)
    be = run_backend(config("full"), drifting(), frames)
    full = ate(be.frame_poses(), poses)
    assert len(be.loops()) >= 1
    assert be.metrics()["alignment_runs"] == 1
    assert full <= 0.3 * odo, (odo, full)


def test_false_loop_is_survived(loop_scene):
    poses, frames = loop_scene

    def run(wrong: bool) -> float:
        cfg = config("full")
        be = SlamBackend(cfg, drifting(), metric=True)
        fe = be.engine.frontend
        for i, f in enumerate(frames):
            be.process(f, fe.step(f))
            if wrong and i == 120:  # force a loop between distant keyframes, bypassing verification
                n = len(be.keyframes())
                edge = Edge(2, n - 8, np.eye(4), be.engine._loop_sigmas(2, 1.0), kind="loop", robust=True)
                be.engine.add_loop_edge(edge)
                be.engine.graph.update(extra_iterations=3)
        be.finalize()
        be.close()
        return ate(be.frame_poses(), poses)

    clean, corrupted = run(False), run(True)
    assert corrupted < 1.10 * clean, (clean, corrupted)


def test_async_worker_matches_sync(loop_scene):
    # pair estimates only: a graph-prior hypothesis depends on the graph's state when the (deferred) check
    # runs, so its refined measurement may differ slightly between sync and async runs
    poses, frames = loop_scene
    cfg = config("loops")
    cfg.loop_closure.use_graph_prior = False
    sync = run_backend(cfg, drifting(), frames)
    cfg = config("loops", queue_size=2)
    cfg.loop_closure.use_graph_prior = False
    cfg.sync = False
    asyn = run_backend(cfg, drifting(), frames)
    assert len(sync.keyframes()) == len(asyn.keyframes())
    assert [(lp.kf_a, lp.kf_b) for lp in sync.loops()] == [(lp.kf_a, lp.kf_b) for lp in asyn.loops()]
    assert np.abs(sync.frame_poses() - asyn.frame_poses()).max() < 1e-4


def test_segments_are_linked_by_pair_estimates(loop_scene):
    poses, frames = loop_scene
    fe = FakeFrontend(reset_every=40)
    be = run_backend(config("odometry"), fe, frames)
    m = be.metrics()
    assert m["segment_links"] == 3 and m["segment_link_failures"] == 0
    assert len({kf.segment for kf in be.keyframes()}) == 4
    assert ate(be.frame_poses(), poses) < 0.02  # the segments' worlds (all start at identity) were not merged


def test_sim3_graph_with_up_to_scale_frontend(loop_scene):
    poses, frames = loop_scene
    be = run_backend(config("full"), FakeFrontend(metric=False), frames, metric=False)
    assert be.metrics()["graph"] == "sim3"
    assert ate(be.frame_poses(), poses, with_scale=True) < 0.02


def test_keyframe_snapshots_scale_points_once(loop_scene):
    _, frames = loop_scene
    be = run_backend(config("loops"), FakeFrontend(drift_rot_deg=0.2, drift_scale=1.01, metric=False), frames,
                     metric=False)
    first, again = be.keyframes(), be.keyframes()
    raw = be._keyframes
    scales = [float(geometry.similarity_scale(be._keyframe_pose(kf.id))) for kf in raw]
    assert any(abs(s - 1.0) > 1e-6 for s in scales)
    for kf, snap, snap2, s in zip(raw, first, again, scales):
        np.testing.assert_allclose(snap.points, kf.points * s, rtol=1e-6)
        assert snap2.points is snap.points  # reused, not recomputed
        np.testing.assert_allclose(snap.pose, geometry.rigid(be._keyframe_pose(kf.id)), atol=1e-12)


def test_outputs_and_metrics(loop_scene, tmp_path):
    poses, frames = loop_scene
    be = run_backend(config("loops"), drifting(), frames)
    be.write_outputs(tmp_path)
    rows = np.loadtxt(tmp_path / "keyframes.tum")
    assert rows.shape == (len(be.keyframes()), 8)
    assert np.allclose(np.linalg.norm(rows[:, 4:], axis=1), 1.0)
    doc = json.loads((tmp_path / "loops.json").read_text())
    assert len(doc["accepted"]) == len(be.loops()) >= 1
    assert all({"kf_a", "kf_b", "score", "accepted", "reason"} <= set(c) for c in doc["candidates"])
    m = be.metrics()
    json.dumps(m)
    assert m["keyframes"] == len(be.keyframes()) and m["loops_accepted"] == len(be.loops())


# ---------------------------------------------------------------------------------------------- alignment
def test_global_alignment_reduces_perturbation():
    gt = loop_trajectory(120)[::4]
    frames = make_frames(gt, 96, 128)
    fe = FakeFrontend()
    kfr = Keyframer(KeyframeConfig(stride=2))
    kfs = {i: kfr.make_keyframe(i, f, fe.step(f), f.gt_pose) for i, f in enumerate(frames)}
    rng = np.random.default_rng(0)
    pert = {0: gt[0]}
    for i in range(1, len(gt)):
        dT = geometry.make_sim3(Rotation.from_rotvec(rng.normal(0, 0.003, 3)).as_matrix(), rng.normal(0, 0.01, 3))
        pert[i] = dT @ gt[i]
    # the edges carry the perturbed relative poses: only the pointmaps can undo the perturbation
    edges = [Edge(i, i + 1, geometry.relative_pose(pert[i], pert[i + 1]), np.ones(6)) for i in range(len(gt) - 1)]

    def rpe(P):
        d = [geometry.relative_pose(P[i], P[i + 1])[:3, 3] - geometry.relative_pose(gt[i], gt[i + 1])[:3, 3] for i in range(len(gt) - 1)]
        return float(np.sqrt(np.mean(np.sum(np.square(d), axis=1))))

    res = align_keyframes(kfs, pert, edges, GlobalAlignmentConfig(prior_weight=0.05), 0.0, use_sim3=False)
    assert rpe(res.poses) < 0.6 * rpe(pert), (rpe(pert), rpe(res.poses))
    assert res.stats["final_cost"] < res.stats["initial_cost"]
    assert all(e.info.get("aligned") for e in res.edges)
    # the original measurements stay available (the safeguard checks odometry against them)
    assert all(np.allclose(e.info["measured"], old.T_ab) for e, old in zip(res.edges, edges))
    # short-range held-out pairs improve; ``improved`` also needs the far covisible pairs (where this open
    # loop meets its start), which the alignment of a chain without a loop edge need not improve
    assert res.stats["heldout_error_after"] < res.stats["heldout_error_before"]
    assert res.improved == (res.stats["far_error_after"] < res.stats["far_error_before"])
