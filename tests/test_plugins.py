"""Plug-ins: a frontend and a dataset from a package installed outside the repository, linked only by entry
points, and the torch-free import of the classical path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.make_data import write_tum_sequence

REPO = Path(__file__).resolve().parents[1]

PLUGIN = '''
"""A metric frontend that reads the ground-truth pose and back-projects the depth (test plug-in)."""
from dataclasses import dataclass

import numpy as np

from frontends.base import Frontend, register_frontend
from slam.datasets.tum import TumDataset
from slam.datasets.base import register_dataset
from slam.types import FrontendOutput, PairEstimate


@dataclass
class OracleConfig:
    depth_max: float = 10.0


@register_frontend("oracle", OracleConfig)
class OracleFrontend(Frontend):
    def __init__(self, config):
        self.config, self.segment, self.first = config, 0, None

    def reset(self):
        self.segment, self.first = self.segment + 1, None

    def step(self, frame):
        if self.first is None:
            self.first = frame.gt_pose
        K, z = frame.K, frame.depth
        v, u = np.mgrid[0:z.shape[0], 0:z.shape[1]]
        points = np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], -1).astype(np.float32)
        conf = ((z > 0) & (z < self.config.depth_max)).astype(np.float32)
        return FrontendOutput(pose=np.linalg.inv(self.first) @ frame.gt_pose, points=points, confidence=conf,
                              K=K, segment=self.segment, colors=frame.rgb, metric=True)

    def pair(self, a, b):
        return PairEstimate(T_ab=np.linalg.inv(a.gt_pose) @ b.gt_pose, confidence=1.0)


@register_dataset("tum_copy")
class TumCopy(TumDataset):
    pass
'''


def install_plugin(site: Path) -> Path:
    """Write the package ``oracle_plugin`` and its ``dist-info`` (entry points only) into ``site``."""
    (site / "oracle_plugin").mkdir(parents=True)
    (site / "oracle_plugin" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "oracle_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: oracle-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[ttsa_slam.frontends]\noracle = oracle_plugin\n\n"
                                           "[ttsa_slam.datasets]\ntum_copy = oracle_plugin\n")
    return site


def slam(site: Path, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO)]))
    return subprocess.run([sys.executable, "-m", "slam.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)


def test_installed_plugin_is_listed_and_runs_end_to_end(tmp_path):
    site = install_plugin(tmp_path / "site")
    listed = slam(site, "frontends")
    assert listed.returncode == 0, listed.stderr
    assert "oracle" in listed.stdout.splitlines()[0] and "rgbd" in listed.stdout.splitlines()[0]
    assert "tum_copy" in listed.stdout.splitlines()[1]

    seq = write_tum_sequence(tmp_path / "seq", n=6)
    out = tmp_path / "out"
    proc = slam(site, "run", "--data", str(seq), "--out", str(out), "--quiet", "frontend=oracle",
                "frontend.oracle.depth_max=5", "dataset.kind=tum_copy", "backend.sync=true")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frontend"] == "oracle" and metrics["frames"] == 6
    assert metrics["ate_rmse_se3"] < 1e-3  # ground-truth poses come back through the whole pipeline
    resolved = (out / "run.yaml").read_text()
    assert "oracle:" in resolved and "depth_max: 5.0" in resolved and "kind: tum_copy" in resolved


def test_plugin_option_errors_name_the_key(tmp_path):
    site = install_plugin(tmp_path / "site")
    proc = slam(site, "run", "--data", str(write_tum_sequence(tmp_path / "seq", n=2)), "frontend=oracle",
                "frontend.oracle.depth_max=far")
    assert proc.returncode == 2 and "frontend.oracle.depth_max" in proc.stderr and "command line" in proc.stderr


def test_unknown_frontend_lists_the_plugins(tmp_path):
    site = install_plugin(tmp_path / "site")
    proc = slam(site, "run", "--data", str(write_tum_sequence(tmp_path / "seq", n=2)), "frontend=nope")
    assert proc.returncode == 2 and "unknown frontend 'nope'" in proc.stderr and "oracle" in proc.stderr


@pytest.mark.parametrize("modules", ["slam.cli, slam.pipeline, frontends, frontends.rgbd, backends, mapping"])
def test_classical_path_imports_no_torch(modules):
    code = (f"import sys, {modules}\n"
            "from frontends import FRONTENDS\n"
            "from slam.datasets import DATASETS\n"
            "names = FRONTENDS.names() + DATASETS.names()\n"
            "assert 'ttsa3r' in names and 'tum' in names, names\n"
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False", "importing the classical path (and listing frontends) imported torch"


def test_backend_is_chosen_by_name_and_satisfies_the_protocol(tmp_path):
    from backends import BACKENDS, BackendConfig, SlamBackend, create_backend
    from slam.config import load_run_config
    from slam.errors import ConfigError
    from slam.types import Backend, PairEstimator

    assert BACKENDS.names() == ["graph"]
    backend = create_backend(BackendConfig(sync=True), frontend=None)
    assert isinstance(backend, SlamBackend) and isinstance(backend, Backend)
    backend.close()
    from frontends.rgbd import RgbdConfig, RgbdFrontend

    assert isinstance(RgbdFrontend(RgbdConfig()), PairEstimator)
    seq = write_tum_sequence(tmp_path / "seq", n=2)
    with pytest.raises(ConfigError, match="command line: .*unknown backend 'nope'"):
        load_run_config(None, data=seq, overrides=["backend.name=nope"])
