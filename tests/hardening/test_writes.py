"""Checked writes: a full disk (simulated with RLIMIT_FSIZE, so writes fail with EFBIG) ends the run with exit
2 and an error naming the file; the files that could be written are complete, none is truncated."""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

from mapping.export import _ply_complete
from slam.trajectory import read_tum
from tests.hardening.helpers import REPO, assert_clean_error, env
from tests.make_data import write_tum_sequence

LIMIT = 30_000  # bytes: enough for run.yaml and the trajectories, not for the map


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE behaviour checked on Linux")
def test_full_disk_during_map_export(tmp_path):
    seq = write_tum_sequence(tmp_path / "seq", n=12)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "slam.cli", "run", "--data", str(seq), "--out", str(out),
                           "--quiet"], cwd=REPO, env=env(), capture_output=True, text=True, timeout=300,
                          preexec_fn=_limit_file_size)
    line = assert_clean_error(proc)
    assert str(out / "map.ply") in line or str(out / "mesh.ply") in line
    assert len(read_tum(out / "trajectory.tum")) == 12
    for name in ("map.ply", "mesh.ply"):
        if (out / name).exists():
            assert _ply_complete(out / name)  # never a truncated file
    assert not list(out.glob(".*partial*")) and not list(out.glob(".*.tmp"))


def test_warnings_are_one_line_on_stderr(tmp_path):
    """An unsorted rgb.txt is sorted with a one-line warning (subprocess: the real stderr)."""
    from tests.hardening.corpus import shuffle_lines

    seq = write_tum_sequence(tmp_path / "seq", n=5)
    shuffle_lines(seq / "rgb.txt")
    proc = subprocess.run([sys.executable, "-m", "slam.cli", "run", "--data", str(seq), "--out",
                           str(tmp_path / "out"), "--quiet", "backend=odometry", "mapping.export_mesh=false"],
                          cwd=REPO, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    warnings = [ln for ln in proc.stderr.splitlines() if "not in time order" in ln]
    assert len(warnings) == 1 and str(seq / "rgb.txt") in warnings[0]
