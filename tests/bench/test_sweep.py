"""slam bench end to end on tiny rendered sequences: child processes, statuses, evo parity, resume, Ray.

Every run is a real ``slam run`` in its own process (a few seconds each, mostly imports).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from slam.bench import BenchOptions, run_bench
from slam.bench.runner import RunSpec, execute_run
from slam.synthetic import render_demo_sequence
from slam.trajectory import read_tum
from tests.test_evaluation import EVO_BIN, evo_stats

FRAMES = ("backend.sync=true", "dataset.max_frames=12")


@pytest.fixture(scope="module")
def sequences(tmp_path_factory) -> tuple[Path, Path]:
    """(good, broken): the demo loop (96x128), and a copy with its 5th colour image deleted."""
    root = tmp_path_factory.mktemp("bench_data")
    good = render_demo_sequence(root / "a" / "loop", n_frames=60, size=(96, 128))
    broken = root / "broken"
    shutil.copytree(good, broken)
    sorted((broken / "rgb").glob("*.png"), key=lambda p: float(p.stem))[4].unlink()
    return good, broken


def _spec(tmp_path: Path, data: Path, **kw) -> RunSpec:
    return RunSpec(sequence=data.name, frontend="rgbd", data=str(data), out_dir=str(tmp_path / data.name / "rgbd"),
                   log_dir=str(tmp_path / "logs"), overrides=FRAMES, **kw)


def test_memory_limit_on_the_child_is_an_oom_row(sequences, tmp_path):
    row = execute_run(_spec(tmp_path, sequences[0], max_memory_mb=300))
    assert row["status"] == "oom", row
    assert row["error"] and row["ate_se3_m"] is None and row["peak_rss_mb"] > 0


def test_timeout_row(sequences, tmp_path):
    row = execute_run(_spec(tmp_path, sequences[0], timeout_s=0.5))
    assert row["status"] == "timeout" and "0.5 s" in row["error"]


def _assert_matches_evo(row: dict, gt_path: Path, tmp_path: Path) -> None:
    run = Path(row["out_dir"])
    assert len(read_tum(run / "trajectory.tum").timestamps) == row["frames"] == 12
    se3 = evo_stats("evo_ape", gt_path, run / "trajectory.tum", tmp_path / f"{row['sequence']}_se3.zip", "-a")
    sim3 = evo_stats("evo_ape", gt_path, run / "trajectory.tum", tmp_path / f"{row['sequence']}_sim3.zip", "-as")
    assert abs(row["ate_se3_m"] - se3["rmse"]) < 1e-4
    assert abs(row["ate_sim3_m"] - sim3["rmse"]) < 1e-4
    metrics = json.loads((run / "metrics.json").read_text())
    assert row["ate_se3_m"] == metrics["ate_rmse_se3"] and row["rpe_rot_deg"] == metrics["rpe_rot_rmse_deg"]


@pytest.mark.skipif(not (EVO_BIN / "evo_ape").exists(), reason="evo command-line tools not installed")
def test_sweep_tables_failed_row_evo_parity_and_resume(sequences, tmp_path, capsys):
    good, broken = sequences
    out = tmp_path / "out"
    opts = BenchOptions(data=[str(good), str(broken)], frontends=["rgbd"], out=str(out), workers=2,
                        overrides=FRAMES, progress=False)
    result = run_bench(opts)
    assert not result.interrupted
    rows = {r["sequence"]: r for r in result.rows}
    assert rows["loop"]["status"] == "ok" and rows["broken"]["status"] == "failed"
    assert "image file not found" in rows["broken"]["error"] and "broken/rgb/" in rows["broken"]["error"]
    _assert_matches_evo(rows["loop"], good / "groundtruth.txt", tmp_path)
    for name in ("results.csv", "results.json", "results.md", "plots/ate_bars.png", "plots/loop__rgbd_ape.png",
                 "plots/loop_trajectories.png", "loop/rgbd/run.yaml", "loop/rgbd/keyframes.tum"):
        assert (out / name).is_file(), name
    assert json.loads((out / "results.json").read_text())["rows"] == result.rows
    lines = capsys.readouterr().out.splitlines()  # one line per finished run
    assert lines[0].startswith("[1/2] ") and lines[1].startswith("[2/2] ")

    # --resume keeps the finished ok run (its row, untouched) and runs the failed one again
    row_file = out / "logs" / "loop__rgbd.row.json"
    before = row_file.stat().st_mtime_ns
    again = run_bench(BenchOptions(**{**opts.__dict__, "resume": True}))
    assert row_file.stat().st_mtime_ns == before
    assert [r["status"] for r in again.rows] == ["ok", "failed"] and again.rows[0] == rows["loop"]


@pytest.mark.skipif(not (EVO_BIN / "evo_ape").exists(), reason="evo command-line tools not installed")
def test_sweep_on_a_local_ray_runtime(sequences, tmp_path):
    pytest.importorskip("ray")
    good, broken = sequences
    result = run_bench(BenchOptions(data=[str(good), str(broken)], frontends=["rgbd"], out=str(tmp_path / "out"),
                                    workers=2, ray=True, overrides=FRAMES, progress=False, plots=False))
    rows = {r["sequence"]: r for r in result.rows}
    assert rows["loop"]["status"] == "ok" and rows["broken"]["status"] == "failed"
    _assert_matches_evo(rows["loop"], good / "groundtruth.txt", tmp_path)


def test_ray_missing_is_a_one_line_error(sequences, tmp_path, monkeypatch, capsys):
    from slam.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code = main(["bench", "--data", str(sequences[0]), "--frontends", "rgbd", "--out", str(tmp_path / "o"), "--ray"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: --ray: ") and "pip install" in err[0]
    assert not (tmp_path / "o" / "logs").exists()


def test_bad_frontend_or_key_fails_before_any_run(sequences, tmp_path, capsys):
    from slam.cli import main

    assert main(["bench", "--data", str(sequences[0]), "--frontends", "rgbd,nope", "--out", str(tmp_path)]) == 2
    assert "unknown frontend 'nope'" in capsys.readouterr().err
    assert main(["bench", "--data", str(sequences[0]), "--frontends", "rgbd", "--out", str(tmp_path),
                 "--protocol", "tum-dynamics", "dataset.stride=1"]) == 2
    assert "fixed by protocol" in capsys.readouterr().err
    assert not (tmp_path / "logs").exists()


def test_ctrl_c_keeps_finished_runs_and_the_partial_table(sequences, tmp_path):
    import signal
    import subprocess
    import time

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "slam.cli", "bench", "--data", *[str(sequences[0])] * 3, "--frontends", "rgbd",
           "--out", str(out), "--quiet", "--no-plots", *FRAMES]
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = proc.stdout.readline()  # the line of the first finished run
    assert first.startswith("[1/3] loop/rgbd: ok"), first
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    table = json.loads((out / "results.json").read_text())
    assert table["interrupted"] is True
    assert [r["sequence"] for r in table["rows"]][:1] == ["loop"] and len(table["rows"]) < 3
    assert (out / "loop" / "rgbd" / "trajectory.tum").is_file()
