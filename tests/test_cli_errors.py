"""Bad input ends with a one-line error naming the file/key and the problem, and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.make_data import write_tum_sequence

REPO = Path(__file__).resolve().parents[1]


def slam(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "slam.cli", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, env=env, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_missing_folder(tmp_path):
    missing = tmp_path / "nowhere"
    assert_one_line_error(slam("run", "--data", str(missing), "--out", str(tmp_path / "o")), str(missing))


def test_missing_rgb_txt(tmp_path):
    seq = write_tum_sequence(tmp_path / "seq")
    (seq / "rgb.txt").unlink()
    assert_one_line_error(slam("run", "--data", str(seq), "--out", str(tmp_path / "o"), "dataset.kind=tum"),
                          "rgb.txt")


def test_unreadable_image_keeps_earlier_results(tmp_path):
    seq = write_tum_sequence(tmp_path / "seq", n=6)
    bad = sorted((seq / "rgb").iterdir())[4]
    bad.write_bytes(b"not a png at all")
    out = tmp_path / "o"
    assert_one_line_error(slam("run", "--data", str(seq), "--out", str(out), "--quiet"), bad.name)
    lines = [line for line in (out / "trajectory.tum").read_text().splitlines() if not line.startswith("#")]
    assert len(lines) == 4  # the frames before the corrupt one are kept


def test_depth_of_wrong_size(tmp_path):
    import cv2
    import numpy as np

    seq = write_tum_sequence(tmp_path / "seq")
    bad = sorted((seq / "depth").iterdir())[1]
    cv2.imwrite(str(bad), np.zeros((10, 10), np.uint16))
    assert_one_line_error(slam("run", "--data", str(seq), "--out", str(tmp_path / "o"), "--quiet"), bad.name)


def test_malformed_groundtruth_line(tmp_path):
    seq = write_tum_sequence(tmp_path / "seq")
    with open(seq / "groundtruth.txt", "a") as f:
        f.write("101.0 1 2 three 0 0 0 1\n")
    assert_one_line_error(slam("run", "--data", str(seq), "--out", str(tmp_path / "o")), "groundtruth.txt")


def test_unknown_frontend(tmp_path):
    seq = write_tum_sequence(tmp_path / "seq")
    assert_one_line_error(slam("run", "--data", str(seq), "frontend.name=orb3"), "unknown frontend 'orb3'")


def test_unknown_dataset_kind(tmp_path):
    seq = write_tum_sequence(tmp_path / "seq")
    assert_one_line_error(slam("run", "--data", str(seq), "--out", str(tmp_path / "o"), "dataset.kind=euroc"),
                          "euroc")


def test_unknown_config_key(tmp_path):
    seq = write_tum_sequence(tmp_path / "seq")
    assert_one_line_error(slam("run", "--data", str(seq), "dataset.colour=1"), "dataset.colour")


def test_bad_yaml(tmp_path):
    seq = write_tum_sequence(tmp_path / "seq")
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("frontend: {name: rgbd\n")
    assert_one_line_error(slam("run", "--config", str(cfg), "--data", str(seq)), str(cfg))


def test_debug_shows_traceback(tmp_path):
    proc = slam("run", "--data", str(tmp_path / "nowhere"), "--debug")
    assert proc.returncode == 2 and "Traceback" in proc.stderr


@pytest.mark.parametrize("command", [["eval", "a.tum", "b.tum"]])
def test_eval_missing_files(tmp_path, command):
    assert_one_line_error(slam(*command, cwd=tmp_path), "a.tum")
