"""Shared helpers of the STream3R tests: the fixture tolerance rule and runners for both entry points."""

from __future__ import annotations

import numpy as np
import torch

OUTPUTS = ("pose_enc", "world_points", "world_points_conf", "depth", "depth_conf")
ATOL = RTOL = 1e-4
MEDIAN = 1e-5


def check_close(ours: np.ndarray, ref: np.ndarray, name: str) -> tuple[float, float]:
    """Assert the fixture rule (per element ``atol + rtol*|ref|``, median ``1e-5``, finite); return (max, median)."""
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, f"{name}: shape {ours.shape} != {ref.shape}"
    diff = np.abs(ours - ref)
    assert np.isfinite(ours).all(), f"{name}: non-finite values"
    worst = float(diff.max()) if diff.size else 0.0
    median = float(np.median(diff)) if diff.size else 0.0
    bad = diff > ATOL + RTOL * np.abs(ref)
    assert not bad.any(), f"{name}: {int(bad.sum())} elements out of tolerance, max diff {worst:.3e}"
    assert median <= MEDIAN, f"{name}: median diff {median:.3e} > {MEDIAN}"
    return worst, median


def run_batch(net, images: np.ndarray, mode: str, window: int = 5) -> dict[str, np.ndarray]:
    """Batch forward of ``images [S,3,H,W]``; outputs without the batch axis."""
    out = net(torch.from_numpy(images), mode=mode, window=window)
    return {k: out[k][0].numpy() for k in OUTPUTS}


def run_stream(net, images: np.ndarray, mode: str, window: int = 5, internals: bool = False) -> dict[str, np.ndarray]:
    """One session step per frame; per-frame outputs stacked along axis 0 (plus cache lengths)."""
    session = net.session(mode=mode, window=window, return_internals=internals)
    x = torch.from_numpy(images)
    steps = [session.step(x[i:i + 1]) for i in range(len(x))]
    out = {k: np.concatenate([s[k][0].numpy() for s in steps]) for k in OUTPUTS}
    if internals:
        out["pose_enc_iters"] = np.concatenate([s["pose_enc_iters"][0].numpy() for s in steps])
        out["patch_tokens"] = np.concatenate([s["patch_tokens"][0].numpy() for s in steps])
        layers = len(steps[0]["agg_tokens"])
        out["agg_tokens"] = np.stack([np.concatenate([s["agg_tokens"][i][0].numpy() for s in steps])
                                      for i in range(layers)])
        out["agg_kv_len_attended"] = np.array([s["kv_len_attended"][0] for s in steps])
        out["cam_kv_len_attended"] = np.array([s["kv_len_attended"][1] for s in steps])
        out["agg_kv_len_kept"] = np.array([s["kv_len_kept"][0] for s in steps])
        out["cam_kv_len_kept"] = np.array([s["kv_len_kept"][1] for s in steps])
    return out
