"""``slam run`` with the CUT3R-family frontends on an image folder and a KITTI-layout sequence.

Uses the tiny random fixture model (the shared ``.pth``, or the compact copy shipped in ``tests/cut3r/data``
written out as ``.safetensors``): the outputs are meaningless, the plumbing (checkpoint from config,
preprocessing, per-frame poses, KITTI output) is what is tested.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from slam.trajectory import read_kitti, read_tum
from tests.datasets.test_kitti import make_kitti

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def linear_checkpoint(tmp_path_factory) -> Path:
    """The tiny linear-head fixture checkpoint: the official-layout ``.pth`` when the shared fixtures are
    there, else the shipped copy converted to ``.safetensors`` (the model string in its metadata)."""
    from frontends.cut3r.checkpoint import write_safetensors
    from tests.conftest import FIXTURES
    from tests.cut3r.compact_fixtures import DATA
    from tests.cut3r.fixture_models import read_compressed_safetensors

    if (FIXTURES / "model_linear.pth").is_file():
        return FIXTURES / "model_linear.pth"
    model_string, state_dict = read_compressed_safetensors(DATA / "model_linear.safetensors.xz")
    path = tmp_path_factory.mktemp("ckpt") / "model_linear.safetensors"
    write_safetensors(path, state_dict, model_string)
    return path


def slam(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "slam.cli", *args], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=600)


def write_image_folder(folder: Path, n: int = 5, size: tuple[int, int] = (96, 128)) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size[0], size[1] + 4 * n, 3), dtype=np.uint8)
    for i in range(n):
        cv2.imwrite(str(folder / f"frame{i}.png"), base[:, 4 * i: 4 * i + size[1]])
    return folder


@pytest.mark.parametrize("rule", ["ttsa3r", "ttt3r"])
def test_image_folder_with_fixture_checkpoint(tmp_path, linear_checkpoint, rule):
    images = write_image_folder(tmp_path / "images")
    out = tmp_path / "out"
    proc = slam("run", "--data", str(images), "--out", str(out), "--quiet", f"frontend.name={rule}",
                f"frontend.cut3r.checkpoint={linear_checkpoint}", "frontend.cut3r.size=64")
    assert proc.returncode == 0, proc.stderr
    traj = read_tum(out / "trajectory.tum")
    assert len(traj.timestamps) == 5 and np.isfinite(traj.poses).all()
    resolved = (out / "run.yaml").read_text()
    assert f"name: {rule}" in resolved and str(linear_checkpoint) in resolved
    assert json.loads((out / "metrics.json").read_text())["frames"] == 5


def test_kitti_layout_writes_kitti_trajectory(tmp_path, linear_checkpoint):
    seq = make_kitti(tmp_path / "kitti", n=6)
    out = tmp_path / "out"
    proc = slam("run", "--data", str(seq), "--out", str(out), "--quiet", "frontend.name=cut3r",
                f"frontend.cut3r.checkpoint={linear_checkpoint}", "frontend.cut3r.size=64")
    assert proc.returncode == 0, proc.stderr
    assert len(read_kitti(out / "trajectory.kitti").poses) == 6
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_matched"] == 6 and "kitti_t_err_pct" in metrics


def test_missing_checkpoint_is_a_config_error(tmp_path):
    images = write_image_folder(tmp_path / "images", n=2)
    proc = slam("run", "--data", str(images), "--out", str(tmp_path / "o"), "frontend.name=ttsa3r")
    assert proc.returncode == 2 and "checkpoint" in proc.stderr and "Traceback" not in proc.stderr
