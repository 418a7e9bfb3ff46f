"""The frontend contract, checked for every registered frontend (built-in or installed plug-in).

Each name in ``FRONTENDS`` must have a case in :data:`CASES`; a frontend without one fails
``test_every_registered_frontend_has_a_case``, so a new frontend is covered the day it is registered.

To add a case: write ``def _case_<name>(folder: Path) -> Case`` (``folder``: a scratch folder shared by
the session's cases) that builds the frontend from its config
dataclass with tiny inputs (no downloads: learned frontends use a tiny random model, see
``tests/cut3r/tiny_models.py``) and add ``"<name>": _case_<name>`` to :data:`CASES`. The generic checks
below then run on it; frontend-specific behaviour belongs in the frontend's own test module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from frontends.base import FRONTENDS, Frontend, create
from slam.camera import scale_intrinsics
from slam.synthetic import DemoRenderer, camera_path
from slam.types import Frame, FrontendOutput, PairEstimate

SIZE = (48, 64)  # (h, w) of the test frames


@dataclass
class Case:
    """A frontend built for the contract checks and what may be asked of it.

    Attributes:
        frontend: the constructed frontend.
        needs_depth: the frontend uses ``Frame.depth`` (pixels without depth must get zero confidence).
        metric: the frontend's outputs are in metres (``FrontendOutput.metric``).
        uses_frame_K: the output ``K`` is the frame's ``K`` mapped to the working size (the test frames
            are 48x64, so working sizes come from resizing without a crop).
        stereo_baseline: the frontend needs a rectified stereo pair: the frames also carry a right view
            rendered this many metres along the camera's x axis (``Frame.right``, ``Frame.baseline``).
        size: (h, w) of the test frames (stereo matching and features need more pixels than 48x64).
    """

    frontend: Frontend
    needs_depth: bool
    metric: bool
    uses_frame_K: bool = True
    stereo_baseline: float | None = None
    size: tuple[int, int] = SIZE


def make_frames(n: int = 4, hole: bool = True, case: Case | None = None) -> list[Frame]:
    """``n`` rendered RGB-D frames of the demo room (exact K, depth and ground truth), 48x64 (or
    ``case.size``, plus a right view for stereo cases); with ``hole`` a block of every depth map is
    invalid (0)."""
    size = SIZE if case is None else case.size
    baseline = None if case is None else case.stereo_baseline
    renderer = DemoRenderer(size)
    poses = camera_path(300)[:n]
    frames = []
    for i, T_wc in enumerate(poses):
        rgb, depth = renderer.render(T_wc)
        depth = depth.astype(np.float32)
        if hole:
            depth[:8, :12] = 0.0
        right = None
        if baseline is not None:
            offset = np.eye(4)
            offset[0, 3] = baseline
            right = renderer.render(T_wc @ offset)[0]
        frames.append(Frame(index=i, timestamp=i / 30.0, rgb=rgb, depth=depth, K=renderer.K.copy(),
                            gt_pose=T_wc, source=f"rendered{i}", right=right, baseline=baseline))
    return frames


def _case_rgbd(folder: Path) -> Case:
    from frontends.rgbd import RgbdConfig

    return Case(create("rgbd", RgbdConfig(downsample=1)), needs_depth=True, metric=True)


def _case_stereo(folder: Path) -> Case:
    return Case(create("stereo"), needs_depth=False, metric=True, stereo_baseline=0.12, size=(240, 320))


def _cut3r_case(name: str) -> Callable[[Path], Case]:
    def build(folder: Path) -> Case:
        from frontends.cut3r.slam_frontend import Cut3rFrontendConfig
        from tests.cut3r.tiny_models import write_tiny_checkpoint

        checkpoint = folder / "tiny_cut3r.safetensors"  # shared by the tests of one session
        if not checkpoint.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            write_tiny_checkpoint(checkpoint)
        return Case(create(name, Cut3rFrontendConfig(checkpoint=str(checkpoint), size=64, calibrated=True)),
                    needs_depth=False,
                    metric=False)

    return build


def _case_stream3r(folder: Path) -> Case:
    from frontends.stream3r.slam_frontend import Stream3rFrontendConfig
    from tests.stream3r.fixture_model import write_public_tiny_model

    model = folder / "stream3r_tiny"
    if not model.is_dir():
        write_public_tiny_model(model)
    # 48x64 frames at width 56 are resized to 42x56 (a multiple of 14), without a crop
    config = Stream3rFrontendConfig(checkpoint=str(model), width=56, window=2, calibrated=True)
    return Case(create("stream3r", config), needs_depth=False, metric=False)


def _case_perturbed(folder: Path) -> Case:
    from frontends.perturbed import PerturbedConfig

    cfg = PerturbedConfig(inner="rgbd", inner_options={"downsample": 1}, rotation_noise_deg=0.1,
                          translation_noise=0.001)
    return Case(create("perturbed", cfg), needs_depth=True, metric=False)


CASES: dict[str, Callable[[Path], Case]] = {
    "rgbd": _case_rgbd,
    "perturbed": _case_perturbed,
    "stereo": _case_stereo,
    "stream3r": _case_stream3r,
    "cut3r": _cut3r_case("cut3r"),
    "ttt3r": _cut3r_case("ttt3r"),
    "ttsa3r": _cut3r_case("ttsa3r"),
}


@pytest.fixture(scope="session")
def case_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("contract") / "case"


@pytest.fixture(params=FRONTENDS.names())
def case(request, case_dir) -> Case:
    name = request.param
    if name not in CASES:
        pytest.fail(f"frontend {name!r} is registered but has no contract case: add one to CASES in {__file__}")
    built = CASES[name](case_dir)
    yield built
    built.frontend.close()


def test_every_registered_frontend_has_a_case():
    missing = sorted(set(FRONTENDS.names()) - set(CASES))
    assert not missing, f"frontends without a contract case in tests/frontends/test_contract.py: {missing}"


def _check_pose(T: np.ndarray) -> None:
    assert T.shape == (4, 4) and T.dtype == np.float64 and np.isfinite(T).all()
    assert np.array_equal(T[3], [0, 0, 0, 1])
    R = T[:3, :3]
    assert np.allclose(R @ R.T, np.eye(3), atol=1e-5) and np.linalg.det(R) == pytest.approx(1.0, abs=1e-5)


def _check_output(out: FrontendOutput, frame: Frame, case: Case) -> None:
    assert isinstance(out, FrontendOutput)
    _check_pose(out.pose)  # camera-to-world, rigid (the scale of up-to-scale frontends is in the points)
    h, w = out.working_size
    assert out.points.shape == (h, w, 3) and out.points.dtype == np.float32
    assert out.confidence.shape == (h, w) and out.confidence.dtype == np.float32
    assert np.isfinite(out.confidence).all() and (out.confidence >= 0).all()
    invalid = ~np.isfinite(out.points).all(axis=-1)
    assert (out.confidence[invalid] == 0).all(), "non-finite points must have zero confidence"
    assert (out.confidence > 0).any()
    # K belongs to the working size: principal point inside the (h, w) image, positive focal lengths
    assert out.K.shape == (3, 3) and np.allclose(out.K[2], [0, 0, 1])
    assert out.K[0, 0] >= 0 and out.K[1, 1] >= 0
    assert -0.5 <= out.K[0, 2] <= w - 0.5 and -0.5 <= out.K[1, 2] <= h - 0.5
    if case.uses_frame_K:
        assert np.allclose(out.K, scale_intrinsics(frame.K, frame.size, (h, w)), atol=1e-6)
    if case.needs_depth:  # back-projected depth: in front of the camera, each point on its own pixel under K
        valid = out.confidence > 0
        assert (out.points[..., 2][valid] > 0).all()
        v, u = np.nonzero(valid)
        proj = out.points[valid] @ out.K.T
        assert np.allclose(proj[:, :2] / proj[:, 2:3], np.stack([u, v], axis=1), atol=1e-2)
    if out.colors is not None:
        assert out.colors.shape == (h, w, 3) and out.colors.dtype == np.uint8
    if out.descriptor is not None:
        assert out.descriptor.ndim == 1 and out.descriptor.dtype == np.float32
        assert np.linalg.norm(out.descriptor) == pytest.approx(1.0, abs=1e-4)
    assert isinstance(out.segment, int) and out.metric is case.metric
    assert 0.0 < out.pose_confidence <= 1.0
    if case.needs_depth:  # pixels without depth are invalid
        scale = (frame.size[0] / h, frame.size[1] / w)
        hole = (slice(0, int(8 / scale[0])), slice(0, int(12 / scale[1])))
        assert (out.confidence[hole] == 0).all()


def test_step_outputs_follow_the_contract(case):
    frames = make_frames(case=case)
    outs = [case.frontend.step(f) for f in frames]
    for out, frame in zip(outs, frames):
        _check_output(out, frame, case)
    assert len({o.segment for o in outs}) == 1, "no reset: one segment"
    if case.metric:  # metric poses follow the true motion (frames are rendered with exact depth)
        for out, frame in zip(outs, frames):
            T_true = np.linalg.inv(frames[0].gt_pose) @ frame.gt_pose
            T_est = np.linalg.inv(outs[0].pose) @ out.pose
            assert np.linalg.norm(T_est[:3, 3] - T_true[:3, 3]) < 0.02


def test_reset_starts_a_new_segment(case):
    frames = make_frames(3, case=case)
    first = case.frontend.step(frames[0]).segment
    case.frontend.step(frames[1])
    case.frontend.reset()
    assert case.frontend.step(frames[2]).segment > first


def test_pair_is_independent_of_the_stream(case, single_open3d_thread):
    """(One Open3D thread: the two streams compared below must not differ by threaded summation order.)"""
    frames = make_frames(3, case=case)
    est = case.frontend.pair(frames[0], frames[2])
    assert isinstance(est, PairEstimate)
    _check_pose(est.T_ab) if not est.sim3 else None
    assert 0.0 <= est.confidence <= 1.0 and est.scale > 0
    for pts, conf in ((est.points_a, est.conf_a), (est.points_b, est.conf_b)):
        if pts is not None:
            assert pts.ndim == 3 and pts.shape[-1] == 3 and conf is not None and conf.shape == pts.shape[:2]
    if case.metric:  # metric pair estimate follows the true relative motion
        T_true = np.linalg.inv(frames[0].gt_pose) @ frames[2].gt_pose
        assert np.linalg.norm(est.T_ab[:3, 3] - T_true[:3, 3]) < 0.02
    # pair() between steps leaves the stream's results unchanged
    streamed = [case.frontend.step(frames[0]), case.frontend.step(frames[1])]
    case.frontend.pair(frames[1], frames[0])
    streamed.append(case.frontend.step(frames[2]))
    case.frontend.reset()
    again = [case.frontend.step(f) for f in frames]
    for a, b in zip(streamed, again):
        assert np.allclose(np.linalg.inv(streamed[0].pose) @ a.pose, np.linalg.inv(again[0].pose) @ b.pose,
                           atol=1e-5)
        assert np.allclose(a.points, b.points, atol=1e-5, equal_nan=True)
