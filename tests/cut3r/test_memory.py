"""Streaming 300 frames holds constant memory: nothing per frame survives ``step`` (outputs are CPU copies
the caller owns; the session keeps only fixed-size state)."""

from __future__ import annotations

import gc
import os
import warnings

import pytest
import torch

from tests.cut3r.tiny_models import random_frames, tiny_net
from tests.cut3r.threads import single_torch_thread  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def live_tensors() -> int:
    """Number of torch tensors reachable by the Python garbage collector."""
    gc.collect()
    with warnings.catch_warnings():  # isinstance() on some lazily deprecated torch objects warns
        warnings.simplefilter("ignore")
        return sum(1 for obj in gc.get_objects() if isinstance(obj, torch.Tensor))


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def session_tensor_bytes(session) -> int:
    """Bytes of the tensors the session and its rule hold between steps."""
    held = [v for obj in (session, session.rule) for v in vars(obj).values() if isinstance(v, torch.Tensor)]
    return sum(t.numel() * t.element_size() for t in held)


def test_300_frames_constant_memory():
    net = tiny_net(seed=0)
    frames = random_frames(8, seed=1)
    session = net.session(update="ttsa3r", reset_every=50)

    def run(n_steps: int, keep: list | None = None) -> None:
        for i in range(n_steps):
            out = session.step(frames[i % 8: i % 8 + 1])
            if keep is not None:
                keep.append(out)

    run(50)  # warm-up: caches (RoPE tables, positions), allocator pools
    tensors_start, rss_start, held_start = live_tensors(), rss_bytes(), session_tensor_bytes(session)
    run(250)
    tensors_end, rss_end, held_end = live_tensors(), rss_bytes(), session_tensor_bytes(session)
    assert session.frame_count == 300 and session.segment == 6
    assert tensors_end - tensors_start <= 2, (tensors_start, tensors_end)
    assert held_end == held_start
    assert rss_end - rss_start < 16 * 2**20, f"RSS grew by {(rss_end - rss_start) / 2**20:.1f} MiB"

    # negative control: the measurement does see outputs that a caller keeps
    kept: list = []
    run(20, keep=kept)
    assert live_tensors() - tensors_end >= 20 * 6
