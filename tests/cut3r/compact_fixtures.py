"""Build the compact CUT3R parity fixtures shipped in ``tests/cut3r/data`` from a full golden-fixture folder.

The full set (official CUT3R / TTT3R / TTSA3R code run on tiny random models, ~22 MB) lives outside the
repository; a public clone runs parity against this subset instead: both tiny models (safetensors, xz),
both input sequences (uint8 frames; the float input is recomputed as ``(u8/255 - 0.5)/0.5``, checked
bit-exact here) and four runs that together cover every update rule, both heads, the periodic reset and
both orientations. Only the arrays the parity test compares are kept.

Usage: ``python -m tests.cut3r.compact_fixtures FULL_FIXTURE_DIR [OUT_DIR]``
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parent / "data"
RUNS = ("dpt_ttsa3r_land_64x48", "dpt_ttt3r_reset3_port_48x64", "linear_cut3r_port_48x64",
        "linear_ttt3r_land_64x48")
RUN_KEYS = ("pts3d_in_self_view", "conf_self", "pts3d_in_other_view", "conf", "camera_pose", "rgb",
            "reset", "view_src_index", "state_feat", "beta")


def normalize(u8: np.ndarray) -> np.ndarray:
    """``[T,H,W,3]`` uint8 -> ``[T,3,H,W]`` float32 ``(u8/255 - 0.5)/0.5`` (dust3r's ImgNorm arithmetic)."""
    x = torch.from_numpy(np.ascontiguousarray(u8)).permute(0, 3, 1, 2).float().div(255).sub(0.5).div(0.5)
    return x.numpy()


def build(src: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for head in ("dpt", "linear"):
        shutil.copyfile(src / f"model_{head}.safetensors.xz", out / f"model_{head}.safetensors.xz")
    for name in ("inputs_land_64x48", "inputs_port_48x64"):
        with np.load(src / f"{name}.npz") as data:
            u8, img = data["img_uint8"], data["img"]
        if not np.array_equal(normalize(u8), img):
            raise SystemExit(f"{name}: float input is not (u8/255-0.5)/0.5 bit for bit; ship it as float")
        np.savez_compressed(out / f"{name}.npz", img_uint8=u8)
    for run in RUNS:
        with np.load(src / f"{run}.npz") as data:
            np.savez_compressed(out / f"{run}.npz", **{k: data[k] for k in RUN_KEYS})
    (out / "manifest.json").write_text(json.dumps({"runs": list(RUNS), "source": "official golden fixtures, "
                                                   "public set (see tests/cut3r/README.md)"}, indent=1) + "\n")


if __name__ == "__main__":
    build(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else DATA)
