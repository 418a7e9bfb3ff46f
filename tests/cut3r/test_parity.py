"""Numerical parity of the streaming session with the official CUT3R / TTT3R / TTSA3R code.

Golden outputs: the official code on tiny random models, CPU float32: the full set in
``$TTSA_SHARED/fixtures/cut3r`` when present, else the compact subset shipped in ``tests/cut3r/data`` (every
rule, both heads, the periodic reset; see ``compact_fixtures.py``). Every run file is replayed through :class:`StreamSession` with the run's update rule
(and ``reset_every=3`` for the ``*_reset3_*`` runs, whose overlap views come back as ``out["overlap"]``).

Tolerances (fixtures README, "faithful port"): per element ``|ours - ref| <= 5e-3 + 1e-3 |ref|``, per array
``median |ours - ref| <= 2e-4``; ``update_weight`` within 5e-4 of the recorded ``beta``; the committed state
within 5e-3. Run with ``-s`` to see the measured max / median differences.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from tests.conftest import FIXTURES
from tests.cut3r.compact_fixtures import DATA as SHIPPED
from tests.cut3r.compact_fixtures import RUNS as SHIPPED_RUNS
from tests.cut3r.fixture_models import fixture_model, load_npz
from tests.cut3r.threads import single_torch_thread  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("single_torch_thread")

RUNS = [
    "dpt_cut3r_land_64x48", "dpt_cut3r_port_48x64",
    "dpt_ttt3r_land_64x48", "dpt_ttt3r_port_48x64",
    "dpt_ttt3r_reset3_land_64x48", "dpt_ttt3r_reset3_port_48x64",
    "dpt_ttsa3r_land_64x48", "dpt_ttsa3r_port_48x64",
    "linear_cut3r_land_64x48", "linear_cut3r_port_48x64",
    "linear_ttt3r_land_64x48", "linear_ttsa3r_port_48x64",
]
PARITY_DIR = FIXTURES if FIXTURES.is_dir() else SHIPPED
PARITY_RUNS = RUNS if FIXTURES.is_dir() else list(SHIPPED_RUNS)
RUN_PATTERN = re.compile(r"^(dpt|linear)_(cut3r|ttt3r|ttsa3r)(_reset(\d+))?_(land|port)_(\d+x\d+)$")
OUTPUTS = ("pts3d_in_self_view", "conf_self", "pts3d_in_other_view", "conf", "camera_pose", "rgb")
ATOL, RTOL, MEDIAN_TOL, BETA_TOL, STATE_TOL = 5e-3, 1e-3, 2e-4, 5e-4, 5e-3


def test_every_fixture_run_is_covered(fixtures_dir):
    present = sorted(p.stem for p in fixtures_dir.glob("*.npz") if not p.stem.startswith("inputs_"))
    assert present, "no run files found"
    assert set(present) == set(RUNS), f"run files not covered / missing: {set(present) ^ set(RUNS)}"


def replay(run: str, fixtures_dir) -> tuple[list[dict], list[np.ndarray], dict]:
    """Feed the run's input frames through a session; returns per-view outputs, states after each step, ref."""
    head, rule, _, reset, orient, size = RUN_PATTERN.match(run).groups()
    ref = load_npz(fixtures_dir / f"{run}.npz")
    frames = load_npz(fixtures_dir / f"inputs_{orient}_{size}.npz")["img"]
    session = fixture_model(fixtures_dir, head).session(update=rule, reset_every=int(reset) if reset else None)
    views, states = [], []
    for i in range(frames.shape[0]):
        out = session.step(torch.from_numpy(frames[i: i + 1]))
        views.append(out)
        if "overlap" in out:
            views.append(out["overlap"])
        states.append((len(views), session.state.numpy()))
    return views, states, ref


def diff_stats(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float, float]:
    """(max |d|, median |d|, max of |d| / (ATOL + RTOL |ref|))."""
    d = np.abs(ours.astype(np.float64) - ref.astype(np.float64))
    return float(d.max()), float(np.median(d)), float((d / (ATOL + RTOL * np.abs(ref))).max())


def test_shipped_subset_is_part_of_the_full_set():
    assert set(SHIPPED_RUNS) <= set(RUNS)
    assert {RUN_PATTERN.match(r).group(2) for r in SHIPPED_RUNS} == {"cut3r", "ttt3r", "ttsa3r"}
    assert {RUN_PATTERN.match(r).group(1) for r in SHIPPED_RUNS} == {"dpt", "linear"}
    assert any(RUN_PATTERN.match(r).group(4) for r in SHIPPED_RUNS), "no reset run shipped"


@pytest.mark.parametrize("run", PARITY_RUNS)
def test_parity_with_official(run):
    views, states, ref = replay(run, PARITY_DIR)

    # the processed views line up with the official ones (incl. overlap views after resets)
    n_views = ref["beta"].shape[0]
    assert len(views) == n_views
    assert [int(v["frame"]) for v in views] == ref["view_src_index"].tolist()
    overlap_expected = np.concatenate([[False], ref["reset"][:-1]]).tolist()
    segments = [int(v["segment"]) for v in views]
    assert [b > a for a, b in zip([0] + segments, segments)] == overlap_expected

    report = []
    for key in OUTPUTS:
        ours = np.concatenate([v[key].numpy() for v in views])
        assert ours.shape == ref[key].shape, key
        mx, med, ratio = diff_stats(ours, ref[key])
        report.append(f"{key}={mx:.1e}/{med:.1e}")
        assert ratio <= 1.0, f"{run} {key}: max |diff| {mx:.3e} exceeds {ATOL} + {RTOL}|ref|"
        assert med <= MEDIAN_TOL, f"{run} {key}: median |diff| {med:.3e} > {MEDIAN_TOL}"

    weights = np.concatenate([v["update_weight"].numpy() for v in views])
    beta_max = float(np.abs(weights - ref["beta"]).max())
    report.append(f"update_weight={beta_max:.1e}")
    assert beta_max <= BETA_TOL, f"{run}: update_weight differs from beta by {beta_max:.3e}"

    state_max = max(float(np.abs(st[0] - ref["state_feat"][n]).max()) for n, st in states)
    report.append(f"state={state_max:.1e}")
    assert state_max <= STATE_TOL, f"{run}: committed state differs by {state_max:.3e}"
    print(f"\n[parity] {run}: max/median " + " ".join(report))


def test_outputs_are_cpu_float32():
    views, _, _ = replay("linear_ttt3r_land_64x48", PARITY_DIR)
    for out in views:
        for key in OUTPUTS + ("update_weight", "descriptor"):
            assert out[key].device.type == "cpu" and out[key].dtype == torch.float32, key
        assert out["update_weight"].shape == (1, 16)
        assert out["descriptor"].shape == (1, 128)
        assert torch.allclose(out["descriptor"].norm(dim=-1), torch.ones(1), atol=1e-5)
