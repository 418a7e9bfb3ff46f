"""The ``torch.compile`` path of the CUT3R-family per-view step against the eager step (its reference).

Inductor reorders floating-point work, so outputs agree to rounding, not bit for bit: per element within
``1e-4 + 1e-4 |eager|`` over four frames of the tiny fixture model (every rule's statistics included).
The CUDA tests are the ones that matter (skipped without CUDA). On CPU, compiling the whole tiny network
takes over 15 minutes on a loaded 2-core machine, so the CPU test compiles one kernel (RoPE2D, C++ code
generation) against its eager reference; it takes ~30 s and is marked slow.
"""

from __future__ import annotations

import pytest
import torch

from tests.cut3r.compact_fixtures import DATA
from tests.cut3r.fixture_models import fixture_model, load_npz

KEYS = ("pts3d_in_self_view", "conf_self", "pts3d_in_other_view", "camera_pose", "update_weight")
ATOL = RTOL = 1e-4


def compare(device: str, rule: str) -> None:
    net = fixture_model(DATA, "dpt")
    net = net if device == "cpu" else __import__("copy").deepcopy(net).to(device)
    frames = torch.from_numpy(load_npz(DATA / "inputs_land_64x48.npz")["img"])[:4].to(device)
    eager, compiled = net.session(update=rule), net.session(update=rule, compile_step=True)
    for i in range(frames.shape[0]):
        ref, ours = eager.step(frames[i:i + 1]), compiled.step(frames[i:i + 1])
        for key in KEYS:
            err = ((ours[key] - ref[key]).abs() - RTOL * ref[key].abs()).max().item()
            assert err <= ATOL, f"{rule} frame {i} {key}: exceeds {ATOL} + {RTOL}|ref| by {err:.2e}"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("rule", ["cut3r", "ttt3r", "ttsa3r"])
def test_compiled_step_matches_eager_on_cuda(rule):
    compare("cuda", rule)


@pytest.mark.slow
def test_compile_step_on_cpu_matches_eager_rope2d():
    from kernels.compiled import compile_step
    from kernels.rope2d import rope2d

    gen = torch.Generator().manual_seed(0)
    tokens = torch.randn(1, 4, 12, 32, generator=gen)
    positions = torch.randint(-1, 6, (1, 12, 2), generator=gen)
    compiled = compile_step(rope2d)(tokens, positions)
    assert torch.allclose(compiled, rope2d(tokens, positions), atol=1e-5, rtol=1e-5)
