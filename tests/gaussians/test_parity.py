"""tttLRM parity with the official code: every run of the shared golden fixtures, and the compact copy in tests/."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mapping.tttlrm import load_model, normalize_poses, to_world
from tests.conftest import SHARED, load_tool

parity = load_tool("tttlrm_parity")
TTTLRM = SHARED / "fixtures" / "tttlrm"
DATA = Path(__file__).parent / "data"
MANIFEST = json.loads((TTTLRM / "manifest.json").read_text()) if (TTTLRM / "manifest.json").is_file() else None
needs_tttlrm = pytest.mark.skipif(MANIFEST is None, reason=f"tttLRM fixtures not found at {TTTLRM}")
RUNS = MANIFEST["runs"] if MANIFEST else []


@needs_tttlrm
@pytest.mark.parametrize("run", RUNS, ids=[r["file"] for r in RUNS])
def test_outputs_poses_and_world_frame_match_the_official_code(run):
    report = parity.run_fixture(TTTLRM, run, MANIFEST)
    assert parity.check_report(report, run, MANIFEST) == []
    if run["ns_dtype"] == "fp32":  # the bf16 check is loose; make sure fp32 is far inside its tolerance
        assert max(mx for mx, _, _ in report["outputs"].values()) < 1e-4


@needs_tttlrm
@pytest.mark.parametrize("run", [r for r in RUNS if r["ns_dtype"] == "fp32"],
                         ids=[r["file"] for r in RUNS if r["ns_dtype"] == "fp32"])
def test_internal_values_match_fp32_runs(run):
    """Residual stream, learning rates and fast weights (per chunk in AR) of the fp32 runs."""
    info = MANIFEST["models"][run["model"]]
    net = load_model(TTTLRM / info["checkpoint"], ns_dtype="fp32", config=TTTLRM / info["config"])
    inp, ref = np.load(TTTLRM / run["inputs"]), np.load(TTTLRM / run["file"])
    out = net.predict(torch.from_numpy(inp["image"])[None], torch.from_numpy(inp["c2w"])[None],
                      torch.from_numpy(inp["fxfycxcy"])[None], mode=run["mode"], return_internals=True)
    np.testing.assert_allclose(out["tokens"].numpy(), ref["tokens"], atol=2e-4, rtol=0)
    np.testing.assert_allclose(out["lr"].numpy(), ref["lr"], atol=1e-6, rtol=1e-4)
    for j in range(3):
        mine = np.stack([w[j].numpy() for w in out["fast_weights"]])
        np.testing.assert_allclose(mine, ref[f"fast_w{j}"], atol=1e-4, rtol=0)
        if f"fast_w{j}_chunks" in ref.files:
            chunks = np.stack([np.stack([c[j].numpy() for c in layer]) for layer in out["fast_weight_chunks"]])
            assert chunks.shape == ref[f"fast_w{j}_chunks"].shape
            np.testing.assert_allclose(chunks, ref[f"fast_w{j}_chunks"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("ns", ["fp32", "bf16"])
def test_compact_fixture_in_tests(ns):
    """The copy in tests/gaussians/data runs without the shared folder (every third Gaussian is stored)."""
    net = load_model(DATA / "model_full.pt", ns_dtype=ns)  # config: model_full.yaml beside the checkpoint
    assert net.arch.max_dist == 4.0
    inp, ref = np.load(DATA / "inputs_full_v4_24x40.npz"), np.load(DATA / "run_full_v4_24x40_every3.npz")
    out = net.predict(torch.from_numpy(inp["image"])[None], torch.from_numpy(inp["c2w"])[None],
                      torch.from_numpy(inp["fxfycxcy"])[None], mode="full")
    assert out["means"].shape == (1, 4 * 24 * 40, 3) and out["sh"].shape == (1, 4 * 24 * 40, 16, 3)
    result = parity.compare_outputs(out, ref, net.arch.max_dist, index=ref["index"], prefix=ns + "_")
    assert parity.within(result, parity.DEFAULT_TOLERANCES[ns]) == []
    c2w_n, anchor, scale = normalize_poses(inp["raw_c2w"], "full")
    np.testing.assert_allclose(c2w_n, inp["norm_c2w"], atol=1e-5)
    np.testing.assert_allclose(anchor, inp["norm_anchor_c2w"], atol=1e-9)
    assert scale == pytest.approx(float(inp["norm_scene_scale"]), rel=1e-9)
    if ns == "fp32":
        world = to_world(out, anchor, scale)
        means = world["means"][0].numpy()[ref["index"]]
        assert np.abs(means - ref["fp32_world_means"]).max() < 1e-3 * np.abs(ref["fp32_world_means"]).max()


def test_ar_mode_needs_whole_chunks_and_patch_multiples():
    net = load_model(DATA / "model_full.pt", ns_dtype="fp32")
    img, k = torch.rand(1, 6, 3, 16, 16), torch.tensor([[20.0, 20.0, 8.0, 8.0]]).repeat(6, 1)[None]
    c2w = torch.eye(4).repeat(1, 6, 1, 1)
    with pytest.raises(ValueError, match="multiple of 4"):
        net.predict(img, c2w, k, mode="ar")
    with pytest.raises(ValueError, match="patch size"):
        net.predict(torch.rand(1, 6, 3, 12, 16), c2w, k, mode="full")
    out = net.predict(img, c2w, k, mode="full")  # any view count in full mode
    assert out["means"].shape == (1, 6 * 16 * 16, 3)


def test_full_mode_is_view_permutation_equivariant():
    """Spec 4.2: full mode is permutation-equivariant in the views (catches view / patch order mix-ups)."""
    net = load_model(DATA / "model_full.pt", ns_dtype="fp32")
    gen = torch.Generator().manual_seed(7)
    n_views, h, w = 3, 16, 32
    img = torch.rand(1, n_views, 3, h, w, generator=gen)
    c2w = torch.eye(4).repeat(1, n_views, 1, 1)
    c2w[0, :, :3, 3] = torch.randn(n_views, 3, generator=gen) * 0.5
    k = torch.tensor([[25.0, 26.0, 16.0, 8.0]]).repeat(n_views, 1)[None]
    perm = [2, 0, 1]
    a = net.predict(img, c2w, k, mode="full")
    b = net.predict(img[:, perm], c2w[:, perm], k[:, perm], mode="full")
    for key in ("means", "opacity_logits", "sh"):
        per_view = a[key][0].reshape(n_views, h * w, *a[key].shape[2:])
        np.testing.assert_allclose(b[key][0].reshape(per_view.shape).numpy(), per_view[perm].numpy(), atol=1e-4)
    # Gaussians lie on their own pixel's ray: patch-major index -> (view, row, column)
    i = 1 * h * w + (1 * (w // 8) + 3) * 64 + 2 * 8 + 6  # view 1, patch (1, 3), in-patch (2, 6)
    v, rest = divmod(i, h * w)
    pr, rest = divmod(rest, (w // 8) * 64)
    pc, rest = divmod(rest, 64)
    ph, pw = divmod(rest, 8)
    row, col = pr * 8 + ph, pc * 8 + pw
    ray = torch.tensor([(col + 0.5 - 16.0) / 25.0, (row + 0.5 - 8.0) / 26.0, 1.0], dtype=torch.float64)
    offset = a["means"][0, i].double() - c2w[0, v, :3, 3].double()
    assert torch.allclose(torch.cross(offset, ray, dim=0), torch.zeros(3, dtype=torch.float64), atol=1e-4)


def test_newton_schulz_steps():
    from mapping.gaussians.fast_weights import newton_schulz

    g = torch.randn(6, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    np.testing.assert_allclose(newton_schulz(g, 0, torch.float64).numpy(), (g / (g.norm() + 1e-7)).numpy())
    x = newton_schulz(g, 5, torch.float64)
    sv = torch.linalg.svdvals(x)
    assert 0.5 < sv.min() and sv.max() < 1.3  # roughly orthogonalised (singular values in about [0.5, 1.2])
    tall = newton_schulz(g.T, 5, torch.float64)  # works on the wide orientation, transposes back
    np.testing.assert_allclose(tall.numpy(), x.T.numpy(), atol=1e-12)
    assert newton_schulz(g.float(), 5, torch.bfloat16).dtype == torch.bfloat16
