"""Rerun sink: a synthetic run saved to .rrd and read back; viewer modes that must never stop a run."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from mapping.config import MappingConfig, VizConfig
from mapping.map_sink import MapSink
from mapping.rerun_sink import RerunSink
from tests.mapping.rrd_reader import read_rrd, transform_matrix
from slam.sinks import FrameEvent, RunInfo
from slam.types import LoopEdge
from tests.mapping.synthetic import frame_and_output, keyframe, pose, trajectory

N_FRAMES = 24
KF_EVERY = 4
LOOP_AT = 20


def _drive(sink: RerunSink, map_sink: MapSink | None = None, n: int = N_FRAMES, gt: np.ndarray | None = None,
           ate_metric: bool = True):
    """Feed a synthetic run through the Sink API; returns the per-frame poses and the keyframes at the end."""
    poses = trajectory(n)
    gt = poses if gt is None else gt
    sinks = [s for s in (map_sink, sink) if s is not None]
    info = RunInfo(out_dir=str(sink.out_dir), n_frames=n, frontend="rgbd", metric=True, gt_poses=gt,
                   timestamps=100.0 + np.arange(n) / 30.0)
    for s in sinks:
        s.start(info)
    kfs, loops = [], []
    for k in range(n):
        frame, out = frame_and_output(k, poses[k], gt=None)
        is_kf = k % KF_EVERY == 0
        if is_kf:
            kfs.append(keyframe(len(kfs), frame, out, poses[k]))
        event = FrameEvent(frame=frame, output=out, pose=poses[k], keyframe_id=len(kfs) - 1 if is_kf else None,
                           fps=10.0 + k, metrics={"fps": 10.0 + k, "keyframes": float(len(kfs))})
        if ate_metric:
            event.metrics["ate_live"] = 0.01 * k
        for s in sinks:
            s.on_frame(event)
        if k == LOOP_AT:  # a loop closure moves every keyframe but the first
            correction = pose(5.0, (0.1, 0.0, -0.05))
            kfs = [kfs[0]] + [dataclasses.replace(kf, pose=correction @ kf.pose) for kf in kfs[1:]]
            loops = [LoopEdge(0, len(kfs) - 1, 0.8)]
        if is_kf or k == LOOP_AT:
            for s in sinks:
                s.on_keyframes(kfs, loops)
    for s in sinks:
        s.finish(info.timestamps, poses, {})
        s.close()
    return poses, kfs


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    map_sink = MapSink(MappingConfig(voxel_size=0.05), out)
    cfg = VizConfig(mode="save", map_every=5, trajectory_chunk=8, budget_ms=1e6)
    sink = RerunSink(cfg, out, keyframe_map=map_sink.map, mesh_source=map_sink.mesh)
    poses, kfs = _drive(sink, map_sink)
    return read_rrd(out / "run.rrd"), poses, kfs, map_sink


def test_entity_tree_and_blueprint(saved_run):
    rrd, _, kfs, _ = saved_run
    expected = {"/world", "/world/camera", "/world/camera/image", "/world/camera/depth", "/world/camera/confidence",
                "/world/map", "/world/mesh", "/world/loops", "/world/trajectory/keyframes", "/world/trajectory/final",
                "/metrics/fps", "/metrics/keyframes", "/metrics/loops", "/metrics/ate_live",
                "/frontend/update_weight_mean", "/frontend/confidence_mean"}
    assert expected <= rrd.paths
    assert rrd.under("/world/keyframes") == sorted(f"/world/keyframes/{kf.id}" for kf in kfs)
    assert rrd.under("/world/trajectory/estimate")
    assert rrd.under("/world/trajectory/groundtruth")
    assert rrd.rows["/world"][0]["ViewCoordinates:xyz"] == [[3, 2, 5]]  # Right, Down, Forward
    assert rrd.blueprints == 1


def test_camera_transform_of_frame_k_is_pose_k(saved_run):
    rrd, poses, _, _ = saved_run
    rows = rrd.with_component("/world/camera", "Transform3D:translation")
    assert [r["frame"] for r in rows] == list(range(N_FRAMES))
    for r in rows:
        np.testing.assert_allclose(transform_matrix(r), poses[r["frame"]], atol=1e-6)
    times = [r["time"] for r in rows]
    np.testing.assert_allclose(times, np.arange(N_FRAMES) / 30.0, atol=1e-6)


def test_camera_views_are_downscaled_with_matching_pinhole(saved_run):
    rrd, _, _, _ = saved_run
    pinholes = rrd.with_component("/world/camera", "Pinhole:resolution")
    assert len(pinholes) == 1  # constant intrinsics: logged once
    assert pinholes[0]["Pinhole:resolution"] == [[320.0, 240.0]]
    K = np.asarray(pinholes[0]["Pinhole:image_from_camera"][0]).reshape(3, 3).T
    np.testing.assert_allclose(K[0], [262.5, 0.0, 159.5], atol=1e-6)
    for path in ("/world/camera/image", "/world/camera/depth", "/world/camera/confidence"):
        assert len(rrd.rows[path]) == N_FRAMES


def test_trajectories_are_logged_incrementally(saved_run):
    rrd, poses, _, _ = saved_run
    strips = rrd.under("/world/trajectory/estimate")
    rows = [r for p in strips for r in rrd.rows[p]]
    assert len(rows) == N_FRAMES  # one short strip per frame, never the whole path
    lengths = [len(r["LineStrips3D:strips"][0]) for r in rows]
    assert max(lengths) <= 8
    # the latest strips, joined, are the whole path
    joined = np.concatenate([np.asarray(rrd.rows[p][-1]["LineStrips3D:strips"][0]) for p in strips])
    path = np.unique(np.round(joined, 5), axis=0)
    np.testing.assert_allclose(path, np.unique(np.round(poses[:, :3, 3], 5), axis=0), atol=1e-5)
    # ground truth equals the estimate here, and is anchored at the first frame
    gt_last = np.asarray(rrd.rows[rrd.under("/world/trajectory/groundtruth")[-1]][-1]["LineStrips3D:strips"][0])
    np.testing.assert_allclose(gt_last[-1], poses[-1, :3, 3], atol=1e-5)
    final = np.asarray(rrd.rows["/world/trajectory/final"][-1]["LineStrips3D:strips"][0])
    assert len(final) == N_FRAMES


def test_keyframes_relogged_after_optimisation_and_loop_edge(saved_run):
    rrd, _, kfs, _ = saved_run
    first = rrd.with_component("/world/keyframes/0", "Transform3D:translation")
    assert len(first) == 1  # never moved
    moved = rrd.with_component("/world/keyframes/1", "Transform3D:translation")
    assert [r["frame"] for r in moved] == [KF_EVERY, LOOP_AT]
    np.testing.assert_allclose(transform_matrix(moved[-1]), kfs[1].pose, atol=1e-6)
    assert len(rrd.with_component("/world/keyframes/1", "Pinhole:resolution")) == 1
    loops = rrd.rows["/world/loops"][-1]["LineStrips3D:strips"]
    assert len(loops) == 1
    np.testing.assert_allclose(loops[0], [kfs[0].pose[:3, 3], kfs[-1].pose[:3, 3]], atol=1e-6)


def test_time_series_values(saved_run):
    rrd, _, kfs, _ = saved_run
    fps = rrd.rows["/metrics/fps"]
    assert [r["frame"] for r in fps] == list(range(N_FRAMES))
    np.testing.assert_allclose([r["Scalars:scalars"][0] for r in fps], 10.0 + np.arange(N_FRAMES))
    weights = [r["Scalars:scalars"][0] for r in rrd.rows["/frontend/update_weight_mean"]]
    np.testing.assert_allclose(weights, 0.1 * np.arange(N_FRAMES))
    loops = [r["Scalars:scalars"][0] for r in rrd.rows["/metrics/loops"]]
    assert loops[LOOP_AT] == 0.0 and loops[-1] == 1.0
    assert rrd.rows["/metrics/keyframes"][-1]["Scalars:scalars"][0] == len(kfs)


def test_map_refresh_is_rate_limited_and_follows_the_loop_closure(saved_run):
    rrd, _, _, map_sink = saved_run
    rows = rrd.rows["/world/map"]
    frames = [r["frame"] for r in rows]
    assert len(rows) <= N_FRAMES // 5 + 2
    assert all(b - a >= 5 for a, b in zip(frames[:-2], frames[1:-1]))
    final = np.asarray(rows[-1]["Points3D:positions"])
    expected, _ = map_sink.map.fused()
    assert len(final) == len(expected)
    np.testing.assert_allclose(np.sort(final, axis=0), np.sort(expected, axis=0), atol=1e-5)
    mesh = rrd.rows["/world/mesh"][-1]
    assert len(mesh["Mesh3D:triangle_indices"]) > 100


def test_budget_lowers_the_image_rate(tmp_path):
    sink = RerunSink(VizConfig(mode="save", budget_ms=1e-3), tmp_path)
    _drive(sink, n=40)
    assert sink.heavy_stride > 1
    stats = sink.stats()
    assert stats["frames"] == 40 and stats["mean_ms"] > 0 and stats["image_stride"] == sink.heavy_stride
    rrd = read_rrd(tmp_path / "run.rrd")
    assert len(rrd.rows["/world/camera/image"]) < 30
    assert len(rrd.with_component("/world/camera", "Transform3D:translation")) == 40  # poses are always logged


def test_off_mode_logs_nothing(tmp_path):
    sink = RerunSink(VizConfig(mode="off"), tmp_path)
    _drive(sink, n=3)
    assert sink.rec is None and not list(tmp_path.iterdir())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("fallback", ["save", "off"])
def test_unreachable_viewer_falls_back_quickly(tmp_path, fallback):
    cfg = VizConfig(mode="connect", url=f"rerun+http://127.0.0.1:{_free_port()}/proxy", fallback=fallback)
    sink = RerunSink(cfg, tmp_path)
    started = time.perf_counter()
    _drive(sink, n=3)
    assert time.perf_counter() - started < 5.0
    assert (tmp_path / "run.rrd").is_file() == (fallback == "save")
    if fallback == "save":
        assert len(read_rrd(tmp_path / "run.rrd").rows["/world/camera"]) >= 3


def test_spawn_without_display_falls_back(tmp_path, monkeypatch):
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "WAYLAND_SOCKET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    sink = RerunSink(VizConfig(mode="spawn", port=_free_port()), tmp_path)
    started = time.perf_counter()
    sink.open()
    assert time.perf_counter() - started < 2.0
    assert sink.rec is not None and sink.rec.mode == "save"
    sink.close()
    assert (tmp_path / "run.rrd").is_file()


def test_serve_mode(tmp_path):
    port = _free_port()
    sink = RerunSink(VizConfig(mode="serve", port=port), tmp_path)
    _drive(sink, n=3)
    assert not (tmp_path / "run.rrd").exists()
    # a second sink on the same port cannot serve there and falls back to saving
    busy = socket.socket()
    busy.bind(("127.0.0.1", port))
    busy.listen()
    try:
        second = RerunSink(VizConfig(mode="serve", port=port), tmp_path)
        second.open()
        assert second.rec.mode == "save"
        second.close()
    finally:
        busy.close()


def _viewer_binary() -> Path | None:
    """The rerun binary itself (the ``rerun`` script on PATH is a wrapper whose child outlives a terminate)."""
    try:
        import rerun_cli
    except ImportError:
        return None
    path = Path(rerun_cli.__file__).with_name("rerun")
    return path if path.is_file() else None


@pytest.mark.skipif(_viewer_binary() is None, reason="no rerun binary")
def test_viewer_closed_mid_run_stops_live_logging(tmp_path):
    """A stand-in viewer (``rerun --serve-grpc``) goes away mid-run: logging stops, nothing blocks."""
    port = _free_port()
    server = subprocess.Popen([str(_viewer_binary()), "--serve-grpc", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        cfg = VizConfig(mode="connect", url=f"rerun+http://127.0.0.1:{port}/proxy", watchdog_s=0.2)
        sink = RerunSink(cfg, tmp_path)
        sink.open()
        assert sink.rec is not None and sink.rec.mode == "connect"
        poses = trajectory(3)
        for k in range(3):
            frame, out = frame_and_output(k, poses[k])
            sink.on_frame(FrameEvent(frame=frame, output=out, pose=poses[k]))
    finally:
        server.terminate()
        server.wait(timeout=10)
    deadline = time.time() + 5
    while not sink.watchdog.lost.is_set() and time.time() < deadline:
        time.sleep(0.05)
    assert sink.watchdog.lost.is_set()
    frame, out = frame_and_output(3, poses[-1])
    started = time.perf_counter()
    sink.on_frame(FrameEvent(frame=frame, output=out, pose=poses[-1]))  # notices, disconnects, goes quiet
    sink.on_frame(FrameEvent(frame=frame, output=out, pose=poses[-1]))
    assert sink.rec is None
    assert time.perf_counter() - started < 3.0
    sink.close()


def test_unwritable_recording_disables_the_sink_without_stopping_the_run(tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    sink = RerunSink(VizConfig(mode="save", file=str(blocker / "run.rrd")), tmp_path)
    _drive(sink, n=2)  # no exception
    assert sink.rec is None


def test_learned_frontend_shows_the_pointmap_depth(tmp_path):
    """No sensor depth: the camera shows the frontend's working-size image, pointmap depth and intrinsics."""
    sink = RerunSink(VizConfig(mode="save", image_scale=1.0), tmp_path)
    sink.open()
    T = trajectory(1)[0]
    frame, out = frame_and_output(0, T, working=(96, 128))
    frame = dataclasses.replace(frame, depth=None, K=None)
    sink.on_frame(FrameEvent(frame=frame, output=out, pose=T))
    sink.close()
    rrd = read_rrd(tmp_path / "run.rrd")
    pinhole = rrd.with_component("/world/camera", "Pinhole:resolution")[0]
    assert pinhole["Pinhole:resolution"] == [[128.0, 96.0]]
    np.testing.assert_allclose(np.asarray(pinhole["Pinhole:image_from_camera"][0]).reshape(3, 3).T, out.K, atol=1e-6)
    depth = rrd.rows["/world/camera/depth"][0]
    fmt = depth["DepthImage:format"][0]
    assert (fmt["width"], fmt["height"]) == (128, 96)
    values = np.frombuffer(bytes(depth["DepthImage:buffer"][0]), dtype=np.float32).reshape(96, 128)
    np.testing.assert_allclose(values, out.points[..., 2], atol=1e-6)


def test_live_ate_from_ground_truth(tmp_path):
    """Without an ``ate_live`` from the pipeline the sink computes it: estimate vs truth after alignment."""
    poses = trajectory(30)
    offset = pose(30.0, (1.0, -2.0, 0.5))
    noise = np.zeros_like(poses)
    noise[:, 0, 3] = np.where(np.arange(30) % 2, 0.01, -0.01)  # +-1 cm along x around the true path
    sink = RerunSink(VizConfig(mode="save", ate_every=10), tmp_path)
    _drive(sink, n=30, gt=offset @ (poses + noise), ate_metric=False)
    rows = read_rrd(tmp_path / "run.rrd").rows["/metrics/ate_live"]
    assert [r["frame"] for r in rows] == [10, 20]
    assert all(0.008 < r["Scalars:scalars"][0] < 0.0101 for r in rows), rows
