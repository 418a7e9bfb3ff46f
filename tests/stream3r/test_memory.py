"""Window mode keeps memory flat over 300 frames; causal mode grows (KV cache of every frame).

Two measures per step: the bytes of the session's KV-cache buffers (exact), and the process's peak
resident memory during the step (``VmHWM``, reset before each step through ``/proc/self/clear_refs``).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def cache_bytes(session) -> int:
    buffers = [c._k for c in session._agg] + [c._v for c in session._agg]
    buffers += [c._k for row in session._cam for c in row] + [c._v for row in session._cam for c in row]
    return sum(b.numel() * b.element_size() for b in buffers if b is not None)


def stream(net, mode: str, n: int, measure_rss: bool):
    rng = np.random.default_rng(3)
    frames = torch.from_numpy(rng.random((8, 3, 56, 84), dtype=np.float32))
    session = net.session(mode=mode, window=5)
    held, peaks = [], []
    for i in range(n):
        if measure_rss:
            _reset_peak()
        out = session.step(frames[i % 8: i % 8 + 1])
        if measure_rss:
            peaks.append(_peak_rss_kib())
        held.append(cache_bytes(session))
        del out
    return np.array(held), np.array(peaks)


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc/self/clear_refs")
def test_window_mode_memory_is_flat_over_300_frames(tiny_net):
    torch.set_num_threads(1)  # one allocator arena pattern per step
    held, peaks = stream(tiny_net, "window", 300, measure_rss=_reset_peak())
    assert (held[10:] == held[10]).all()
    later = peaks[10:]
    spread = (later.max() - later.min()) / later.max()
    assert spread < 0.02, f"peak RSS over frames 10..300 varies by {100 * spread:.2f} % ({later.min()}..{later.max()} KiB)"


def test_causal_mode_memory_grows(tiny_net):
    held, _ = stream(tiny_net, "causal", 40, measure_rss=False)
    assert held[-1] > 2 * held[10]
    assert (np.diff(held) >= 0).all()
