"""StreamSession behaviour on a tiny random model: resets equal a fresh start, the reset protocol,
counters, input checks and the autocast path."""

from __future__ import annotations

import pytest
import torch

from tests.cut3r.threads import single_torch_thread  # noqa: F401 - fixture
from tests.cut3r.tiny_models import random_frames, tiny_net

pytestmark = pytest.mark.usefixtures("single_torch_thread")
KEYS = ("pts3d_in_self_view", "conf_self", "pts3d_in_other_view", "conf", "camera_pose", "rgb", "update_weight")


@pytest.fixture(scope="module")
def net():
    return tiny_net(seed=4)


@pytest.fixture(scope="module")
def frames():
    return random_frames(5, seed=2)


def _equal(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in KEYS)


@pytest.mark.parametrize("rule", ["cut3r", "ttt3r", "ttsa3r"])
def test_reset_equals_fresh_session(net, frames, rule):
    session = net.session(update=rule)
    for i in range(3):
        session.step(frames[i: i + 1])
    session.reset()
    assert session.segment == 1 and session.frame_count == 3
    session.reset()  # no view since the last reset: still the same (empty) segment
    assert session.segment == 1
    fresh = net.session(update=rule)
    for i in range(3, 5):
        ours, ref = session.step(frames[i: i + 1]), fresh.step(frames[i: i + 1])
        assert _equal(ours, ref)
        assert int(ours["segment"]) == 1 and int(ours["frame"]) == i


def test_reset_every_inserts_overlap_view(net, frames):
    session = net.session(update="ttt3r", reset_every=2)
    plain = net.session(update="ttt3r")
    outs = [session.step(frames[i: i + 1]) for i in range(5)]
    refs = [plain.step(frames[i: i + 1]) for i in range(2)]
    # frames 0 and 1 are processed as without resets; the reset happens after frame 1
    assert _equal(outs[0], refs[0]) and _equal(outs[1], refs[1])
    assert [("overlap" in o) for o in outs] == [False, True, False, True, False]
    # the overlap view is the first view of a new segment: same as a fresh session on that image
    fresh = net.session(update="ttt3r")
    overlap = outs[1]["overlap"]
    assert _equal(overlap, fresh.step(frames[1:2]))
    assert int(overlap["segment"]) == 1 and int(overlap["frame"]) == 1
    assert torch.equal(overlap["update_weight"], torch.ones_like(overlap["update_weight"]))
    # and the stream continues from it
    assert _equal(outs[2], fresh.step(frames[2:3]))
    assert session.segment == 2 and session.frame_count == 5


def test_input_checks(net):
    session = net.session()
    with pytest.raises(ValueError, match="1,3,H,W"):
        session.step(torch.zeros(3, 32, 48))
    with pytest.raises(ValueError, match="multiple of the patch size"):
        session.step(torch.zeros(1, 3, 30, 48))
    with pytest.raises(ValueError, match="reset_every"):
        net.session(reset_every=0)


def test_autocast_bfloat16_runs_with_float32_outputs(net, frames):
    ref_session = net.session(update="ttsa3r")
    bf16_session = net.session(update="ttsa3r", autocast_dtype=torch.bfloat16)
    for i in range(3):
        ref, ours = ref_session.step(frames[i: i + 1]), bf16_session.step(frames[i: i + 1])
        for k in KEYS:
            assert ours[k].dtype == torch.float32
        assert (ours["camera_pose"] - ref["camera_pose"]).abs().max() < 5e-2
        assert (ours["update_weight"] - ref["update_weight"]).abs().max() < 2e-2
        assert (ours["rgb"] - ref["rgb"]).abs().median() < 1e-2
    assert bf16_session.state.dtype == torch.float32
