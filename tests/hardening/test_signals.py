"""SIGINT and SIGTERM at every phase of a run leave ``trajectory.tum`` with every processed frame.

The run pauses at a named phase (test hook ``TTSA_SLAM_PAUSE_AT``, see :mod:`slam.interrupts`) and writes
a marker file; the test then sends a real signal to the ``python -m slam.cli run`` subprocess.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from slam.trajectory import read_tum
from tests.hardening.helpers import REPO, env
from tests.make_data import write_tum_sequence

N_FRAMES = 8


def _run_and_signal(tmp_path, phase: str, sig: int):
    seq = write_tum_sequence(tmp_path / "seq", n=N_FRAMES)
    out, marker = tmp_path / "out", tmp_path / "paused"
    proc = subprocess.Popen(
        [sys.executable, "-m", "slam.cli", "run", "--data", str(seq), "--out", str(out), "--quiet"],
        cwd=REPO, env=env(TTSA_SLAM_PAUSE_AT=phase, TTSA_SLAM_PAUSE_FILE=str(marker)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never reached the phase"
        time.sleep(0.05)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return proc.returncode, stdout, stderr, out


CASES = [
    ("frame:3", signal.SIGINT, 3),
    ("finalize", signal.SIGTERM, N_FRAMES),
    ("export", signal.SIGINT, N_FRAMES),
]
SLOW_CASES = [
    ("frame:3", signal.SIGTERM, 3),
    ("finalize", signal.SIGINT, N_FRAMES),
    ("export", signal.SIGTERM, N_FRAMES),
]


def _check(tmp_path, phase, sig, n_expected):
    code, _, stderr, out = _run_and_signal(tmp_path, phase, sig)
    assert code == 128 + int(sig), stderr[-2000:]
    assert "Traceback" not in stderr
    traj = read_tum(out / "trajectory.tum")
    assert len(traj) == n_expected
    assert (traj.timestamps[1:] > traj.timestamps[:-1]).all()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["frames"] == n_expected
    assert (out / "keyframes.tum").is_file() and len(read_tum(out / "keyframes.tum")) >= 1
    if phase == "finalize":
        assert metrics["trajectory"].startswith("final optimisation skipped")


@pytest.mark.parametrize("phase, sig, n_expected", CASES, ids=[f"{p}-{s.name}" for p, s, _ in CASES])
def test_signal_keeps_every_processed_frame(tmp_path, phase, sig, n_expected):
    _check(tmp_path, phase, sig, n_expected)


@pytest.mark.slow
@pytest.mark.parametrize("phase, sig, n_expected", SLOW_CASES, ids=[f"{p}-{s.name}" for p, s, _ in SLOW_CASES])
def test_signal_keeps_every_processed_frame_slow(tmp_path, phase, sig, n_expected):
    _check(tmp_path, phase, sig, n_expected)


def test_trajectory_is_flushed_by_time(tmp_path, monkeypatch):
    """``output.flush_seconds=0.001`` rewrites trajectory.tum after every frame, even without a signal."""
    from slam.config import load_run_config
    from slam.pipeline import Pipeline

    seq = write_tum_sequence(tmp_path / "seq", n=5)
    cfg = load_run_config(None, data=seq, out=tmp_path / "out",
                          overrides=["backend.sync=true", "output.flush_every=0", "output.flush_seconds=0.001"])
    pipe = Pipeline(cfg, progress=False)
    seen = []
    original = Pipeline._write_trajectories

    def spy(self, write_kitti):
        seen.append(len(self.timestamps))
        return original(self, write_kitti)

    monkeypatch.setattr(Pipeline, "_write_trajectories", spy)
    pipe.run()
    assert seen[:4] == [2, 3, 4, 5] or seen[:5] == [1, 2, 3, 4, 5]


@pytest.mark.slow
def test_repeated_signals_still_leave_every_frame(tmp_path):
    """Ctrl-C pressed again and again while the run finishes: each press skips a step, the frames stay."""
    seq = write_tum_sequence(tmp_path / "seq", n=N_FRAMES)
    out, marker = tmp_path / "out", tmp_path / "paused"
    proc = subprocess.Popen(
        [sys.executable, "-m", "slam.cli", "run", "--data", str(seq), "--out", str(out), "--quiet"],
        cwd=REPO, env=env(TTSA_SLAM_PAUSE_AT="finalize", TTSA_SLAM_PAUSE_FILE=str(marker)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    for _ in range(5):
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGINT)
        time.sleep(0.02)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr
    assert len(read_tum(out / "trajectory.tum")) == N_FRAMES


def test_ignored_signals_stay_ignored():
    """``nohup`` ignores SIGHUP: the run must not turn it into an interrupt."""
    from slam.interrupts import SignalState, interrupt_signals

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with interrupt_signals(SignalState()):
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)
