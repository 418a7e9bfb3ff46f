#!/usr/bin/env python
"""Check the tttLRM implementation against golden fixtures (a folder with ``manifest.json``).

Runs every entry of the manifest's ``runs`` through ``mapping.tttlrm`` (load_model / predict, normalize_poses,
to_world) and prints max / p99 / median |difference| per output (means divided by max(1, max_dist/4)) against
the manifest's tolerances. Exit code 0 when every run passes, 1 otherwise, 2 on a missing folder.

Usage::

    python tools/tttlrm_parity.py ../shared/fixtures/tttlrm [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

OUTPUTS = ("means", "sh", "log_scales", "quats", "opacity_logits")
#: tolerances of the checker (fixture README); the manifest's own values take precedence
DEFAULT_TOLERANCES = {"fp32": {"max_abs": 2e-4, "median_abs": 2e-5},
                      "bf16": {"max_abs": 2.0, "p99_abs": 0.6, "median_abs": 0.15}}


def stats(diff: np.ndarray) -> tuple[float, float, float]:
    """(max, p99, median) of an array of absolute differences."""
    flat = diff.ravel().astype(np.float64)
    return float(flat.max()), float(np.quantile(flat, 0.99)), float(np.median(flat))


def compare_outputs(out: dict[str, Any], ref: Any, max_dist: float, index: np.ndarray | None = None,
                    prefix: str = "") -> dict[str, tuple[float, float, float]]:
    """Per-output (max, p99, median) |out - ref|; ``index`` selects Gaussians when ``ref`` holds a subset."""
    result = {}
    for key in OUTPUTS:
        mine = out[key][0].detach().cpu().numpy() if hasattr(out[key], "detach") else np.asarray(out[key])
        if index is not None:
            mine = mine[index]
        diff = np.abs(mine - ref[prefix + key])
        if key == "means":
            diff = diff / max(1.0, max_dist / 4.0)
        result[key] = stats(diff)
    return result


def within(result: dict[str, tuple[float, float, float]], tol: dict[str, float]) -> list[str]:
    """Failures of ``result`` against one tolerance set, as readable strings (empty = pass)."""
    fails = []
    for key, (mx, p99, med) in result.items():
        for name, value in (("max_abs", mx), ("p99_abs", p99), ("median_abs", med)):
            if name in tol and not value <= tol[name]:
                fails.append(f"{key} {name} {value:.3g} > {tol[name]:.3g}")
    return fails


def run_fixture(folder: Path, run: dict[str, Any], manifest: dict[str, Any], device: str = "cpu") -> dict[str, Any]:
    """Run one manifest entry on ``device`` (float32, no autocast); returns per-output stats, pose and world-frame
    checks."""
    import torch

    from mapping.tttlrm import load_model, normalize_poses, to_world

    model_info = manifest["models"][run["model"]]
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False  # the fixtures are float32 (spec section 8)
        torch.backends.cudnn.allow_tf32 = False
    net = load_model(folder / model_info["checkpoint"], device=device, ns_dtype=run["ns_dtype"],
                     config=folder / model_info["config"])
    inp = np.load(folder / run["inputs"])
    ref = np.load(folder / run["file"])
    out = net.predict(torch.from_numpy(inp["image"])[None], torch.from_numpy(inp["c2w"])[None],
                      torch.from_numpy(inp["fxfycxcy"])[None], mode=run["mode"])
    report: dict[str, Any] = {"outputs": compare_outputs(out, ref, net.arch.max_dist)}
    c2w_n, anchor, scale = normalize_poses(inp["raw_c2w"], run["mode"])
    report["poses"] = (float(np.abs(c2w_n - inp["norm_c2w"]).max()),
                       float(np.abs(anchor - inp["norm_anchor_c2w"]).max() / np.abs(inp["norm_anchor_c2w"]).max()),
                       abs(scale / float(inp["norm_scene_scale"]) - 1.0))
    if "world_means" in ref.files:
        world = to_world({k: ref[k] for k in OUTPUTS}, anchor, scale)
        qa = world["quats"] / np.linalg.norm(world["quats"], axis=-1, keepdims=True)
        qb = ref["world_quats"] / np.linalg.norm(ref["world_quats"], axis=-1, keepdims=True)
        report["world"] = (float(np.abs(world["means"] - ref["world_means"]).max() / np.abs(ref["world_means"]).max()),
                           float(np.abs(world["log_scales"] - ref["world_log_scales"]).max()),
                           float(np.minimum(np.abs(qa - qb).max(-1), np.abs(qa + qb).max(-1)).max()))
    return report


def check_report(report: dict[str, Any], run: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    """All failures of one run's report against the manifest tolerances."""
    tols = {**DEFAULT_TOLERANCES, **manifest.get("tolerances", {})}
    fails = within(report["outputs"], tols[run["ns_dtype"]])
    pose_tol = tols.get("normalize_poses", {"c2w_abs": 1e-5, "anchor_rel": 1e-5, "scene_scale_rel": 1e-5})
    for value, name in zip(report["poses"], ("c2w_abs", "anchor_rel", "scene_scale_rel")):
        if not value <= pose_tol[name]:
            fails.append(f"normalize_poses {name} {value:.3g}")
    if "world" in report:
        world_tol = tols.get("to_world", {"means_rel_to_max": 1e-5, "log_scales_abs": 1e-4,
                                          "unit_quats_abs_up_to_sign": 1e-4})
        for value, name in zip(report["world"], ("means_rel_to_max", "log_scales_abs", "unit_quats_abs_up_to_sign")):
            if not value <= world_tol[name]:
                fails.append(f"to_world {name} {value:.3g}")
    return fails


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="fixture folder holding manifest.json")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu); float32, TF32 off")
    args = parser.parse_args(argv)
    manifest_path = args.folder / "manifest.json"
    if not manifest_path.is_file():
        print(f"error: {manifest_path}: not found", file=sys.stderr)
        return 2
    manifest = json.loads(manifest_path.read_text())
    failed = 0
    for run in manifest["runs"]:
        report = run_fixture(args.folder, run, manifest, args.device)
        fails = check_report(report, run, manifest)
        failed += bool(fails)
        print(f"{run['file']}: {'FAIL ' + '; '.join(fails) if fails else 'ok'}")
        for key, (mx, p99, med) in report["outputs"].items():
            print(f"  {key:15s} max {mx:.2e}  p99 {p99:.2e}  median {med:.2e}")
        print("  normalize_poses c2w %.1e anchor %.1e scale %.1e" % report["poses"])
        if "world" in report:
            print("  to_world means %.1e log_scales %.1e quats %.1e" % report["world"])
    return 1 if failed else 0


if __name__ == "__main__":
    from slam.entry import tool_main

    sys.exit(tool_main(main))
