"""Streaming session vs the batch entry point, window eviction, resets, and the KV cache buffer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from frontends.stream3r.kv_cache import KVCache
from tests.stream3r.helpers import OUTPUTS, check_close, run_batch, run_stream


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """9 smooth random frames ``[9, 3, 28, 42]`` in [0, 1] (a size the fixtures do not use)."""
    rng = np.random.default_rng(7)
    base = rng.random((3, 28, 42 + 2 * 9)).astype(np.float32)
    return np.stack([base[:, :, 2 * i: 2 * i + 42] for i in range(9)])


def test_stream_causal_equals_batch_causal(tiny_net, frames):
    ours, ref = run_stream(tiny_net, frames, "causal"), run_batch(tiny_net, frames, "causal")
    for key in OUTPUTS:
        check_close(ours[key], ref[key], key)


@pytest.mark.parametrize("window", [2, 5])
def test_stream_window_is_batch_window_one_wider(tiny_net, frames, window):
    """Official off-by-one: streaming window w keeps anchor + w frames after each step == batch mask w + 1."""
    ours = run_stream(tiny_net, frames, "window", window)
    for key in OUTPUTS:
        check_close(ours[key], run_batch(tiny_net, frames, "window", window + 1)[key], key)
    narrow = run_batch(tiny_net, frames, "window", window)["pose_enc"]
    assert np.abs(ours["pose_enc"][window + 1:] - narrow[window + 1:]).max() > 1e-3  # the modes do differ


def test_window_equals_causal_until_first_eviction(tiny_net, frames):
    window = 2
    ours, causal = run_stream(tiny_net, frames, "window", window), run_stream(tiny_net, frames, "causal")
    np.testing.assert_array_equal(ours["pose_enc"][: window + 2], causal["pose_enc"][: window + 2])
    assert np.abs(ours["pose_enc"][window + 2:] - causal["pose_enc"][window + 2:]).max() > 1e-3


def test_cache_lengths_follow_the_official_table(tiny_net, frames):
    out = run_stream(tiny_net, frames, "window", 3, internals=True)
    p = 5 + 2 * 3
    assert list(out["agg_kv_len_attended"]) == [p * f for f in (1, 2, 3, 4, 5, 5, 5, 5, 5)]
    assert list(out["agg_kv_len_kept"]) == [p * f for f in (1, 2, 3, 4, 4, 4, 4, 4, 4)]
    assert list(out["cam_kv_len_kept"]) == [1, 2, 3, 4, 4, 4, 4, 4, 4]


def test_reset_starts_a_new_sequence(tiny_net, frames):
    session = tiny_net.session(mode="window", window=2)
    x = torch.from_numpy(frames)
    for i in range(5):
        session.step(x[i:i + 1])
    session.reset()
    again = [session.step(x[i:i + 1])["pose_enc"] for i in range(3)]
    fresh = run_stream(tiny_net, frames[:3], "window", 2)["pose_enc"]
    np.testing.assert_array_equal(torch.cat(again, 1)[0].numpy(), fresh)


def test_step_output_shapes_and_batch_axis(tiny_net, frames):
    out = tiny_net.session(mode="causal").step(torch.from_numpy(frames[:1]))
    h, w = frames.shape[2:]
    assert out["pose_enc"].shape == (1, 1, 9) and out["world_points"].shape == (1, 1, h, w, 3)
    assert out["world_points_conf"].shape == (1, 1, h, w) and out["depth"].shape == (1, 1, h, w, 1)
    assert out["depth_conf"].shape == (1, 1, h, w) and out["pose_enc"].dtype == torch.float32
    five_d = tiny_net(torch.from_numpy(frames[None, :3]), mode="full")
    four_d = tiny_net(torch.from_numpy(frames[:3]), mode="full")
    assert five_d["world_points"].shape == (1, 3, h, w, 3)
    assert torch.equal(five_d["pose_enc"], four_d["pose_enc"])


def test_bad_arguments(tiny_net, frames):
    with pytest.raises(ValueError, match="mode"):
        tiny_net.session(mode="full")
    with pytest.raises(ValueError, match="mode"):
        tiny_net(torch.from_numpy(frames[:2]), mode="sliding")
    session = tiny_net.session(mode="causal")
    session.step(torch.from_numpy(frames[:1]))
    with pytest.raises(ValueError, match="reset"):
        session.step(torch.zeros(1, 3, 42, 42))


def test_kv_cache_window_buffer_is_fixed_and_ordered():
    cache = KVCache(tokens_per_frame=2, max_frames=3 + 2)
    frames = [torch.full((1, 1, 2, 4), float(i)) for i in range(8)]
    buffers = set()
    for i, f in enumerate(frames):
        k, v = cache.extend(f, -f)
        assert k.shape[2] == 2 * min(i + 1, 5)
        cache.evict(3)
        buffers.add(cache._k.data_ptr())
    held = cache._k[0, 0, :cache.length, 0].tolist()
    assert held == [0, 0, 5, 5, 6, 6, 7, 7]  # anchor + last 3 frames, in arrival order
    assert len(buffers) == 1


def test_kv_cache_causal_grows_by_doubling():
    cache = KVCache(tokens_per_frame=1, initial_frames=2)
    sizes = []
    for i in range(9):
        k, _ = cache.extend(torch.full((1, 1, 1, 2), float(i)), torch.zeros(1, 1, 1, 2))
        sizes.append(cache._k.shape[2])
    assert k[0, 0, :, 0].tolist() == list(range(9))
    assert sizes == [2, 2, 4, 4, 8, 8, 8, 8, 16]
