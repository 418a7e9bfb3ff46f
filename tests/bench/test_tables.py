"""slam bench: protocols, sequence names, table rows and files (no child processes)."""

from __future__ import annotations

import csv
import json

import pytest

from slam.bench.child import is_oom_message
from slam.bench.protocols import PROTOCOLS, get_protocol, run_overrides
from slam.bench.runner import RunSpec, unique_sequence_names
from slam.bench.tables import COLUMNS, row_from_run, summarize, write_tables
from slam.errors import ConfigError


def test_protocols_have_sources_and_fix_frame_selection():
    assert set(PROTOCOLS) == {"default", "tum-dynamics", "tum-fr1", "kitti-odometry"}
    for protocol in PROTOCOLS.values():
        assert protocol.source and protocol.scored and protocol.primary in COLUMNS
    assert set(get_protocol("tum-dynamics").overrides) == {"dataset.stride=3", "dataset.max_frames=90"}
    assert get_protocol("tum-fr1").overrides == ("dataset.stride=2",)
    assert run_overrides(get_protocol("tum-fr1"), ["backend.sync=true"]) == ["dataset.stride=2", "backend.sync=true"]
    with pytest.raises(ConfigError, match="fixed by protocol 'tum-fr1'"):
        run_overrides(get_protocol("tum-fr1"), ["dataset.stride=5"])
    with pytest.raises(ConfigError, match="unknown protocol"):
        get_protocol("tum")


def test_protocol_overrides_compose_into_a_valid_config():
    from slam.config import load_run_config

    for protocol in PROTOCOLS.values():
        cfg = load_run_config(None, overrides=[*protocol.overrides, "frontend.name=rgbd"])
        if protocol.name == "tum-dynamics":
            assert (cfg.dataset.stride, cfg.dataset.max_frames) == (3, 90)
        if protocol.name == "kitti-odometry":
            assert cfg.output.kitti is True


def test_unique_sequence_names(tmp_path):
    for sub in ("a/seq", "b/seq", "c/seq", "other"):
        (tmp_path / sub).mkdir(parents=True)
    paths = [tmp_path / "a/seq", tmp_path / "b/seq", tmp_path / "other", tmp_path / "c/seq"]
    assert unique_sequence_names(paths) == ["seq", "seq_2", "other", "seq_3"]


def test_oom_messages():
    assert is_oom_message("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB")
    assert is_oom_message("ImportError: libfoo.so: failed to map segment from shared object")
    assert is_oom_message("x: [Errno 12] Cannot allocate memory")
    assert not is_oom_message("/data/rgb/1.png: image file not found")


def _spec(tmp_path, sequence, frontend="rgbd") -> RunSpec:
    return RunSpec(sequence=sequence, frontend=frontend, data=str(tmp_path / sequence),
                   out_dir=str(tmp_path / "out" / sequence / frontend), log_dir=str(tmp_path / "out" / "logs"))


def test_rows_from_metrics_and_tables(tmp_path):
    ok, bad = _spec(tmp_path, "s1"), _spec(tmp_path, "s2")
    for spec, ate in ((ok, 0.02), (bad, 0.5)):
        (tmp_path / spec.out_dir).mkdir(parents=True)
        (tmp_path / spec.out_dir / "metrics.json").write_text(json.dumps(
            {"frames": 10, "frames_per_second": 4.0, "ate_rmse_se3": ate, "ate_rmse_sim3": ate / 2,
             "rpe_trans_rmse": 0.01, "rpe_rot_rmse_deg": 0.5, "kitti_t_err_pct": 1.5}))
    rows = [row_from_run(ok, "ok", peak_rss_mb=100.0), row_from_run(bad, "failed", "x.png: image file not found"),
            row_from_run(_spec(tmp_path, "s3"), "oom", "MemoryError")]
    assert rows[0]["ate_se3_m"] == 0.02 and rows[0]["ate_sim3_m"] == 0.01 and rows[0]["t_err_pct"] == 1.5
    assert rows[1]["frames"] == 10 and rows[1]["ate_se3_m"] is None  # a failed run's partial ATE is not scored
    (summary,) = summarize(rows)
    assert (summary["frontend"], summary["runs"], summary["ok"], summary["not_ok"]) == ("rgbd", 3, 1, 2)
    assert summary["mean_ate_se3_m"] == 0.02 and summary["mean_peak_rss_mb"] == 100.0  # over ok runs only

    write_tables(tmp_path / "out", rows, "default", "all frames")
    with open(tmp_path / "out" / "results.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [r["status"] for r in table] == ["ok", "failed", "oom"]
    assert list(table[0])[:11] == ["sequence", "frontend", "status", "error", "frames", "ate_se3_m", "ate_sim3_m",
                                   "rpe_trans_m", "rpe_rot_deg", "fps", "peak_rss_mb"]
    assert float(table[0]["ate_se3_m"]) == 0.02 and table[1]["error"] == "x.png: image file not found"
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["rows"] == rows and data["summary"][0]["ok"] == 1 and data["scored"] == "all frames"
    md = (tmp_path / "out" / "results.md").read_text()
    assert "Scored: all frames" in md and "| s2 | rgbd | failed | x.png: image file not found |" in md
    assert "t_err_pct" in md and "Summary per frontend" in md


def test_plan_one_run_per_sequence_and_frontend(tmp_path):
    from slam.bench.sweep import BenchOptions, plan

    for sub in ("x/seq", "y/seq"):
        (tmp_path / sub).mkdir(parents=True)
    specs = plan(BenchOptions(data=[str(tmp_path / "x/seq"), str(tmp_path / "y/seq")], frontends=["rgbd", "ttt3r"],
                              out=str(tmp_path / "out"), protocol="tum-dynamics", overrides=("backend.sync=true",)))
    assert [(s.sequence, s.frontend) for s in specs] == [("seq", "rgbd"), ("seq", "ttt3r"), ("seq_2", "rgbd"),
                                                         ("seq_2", "ttt3r")]
    assert specs[2].out_dir == str(tmp_path / "out" / "seq_2" / "rgbd") and specs[2].data == str(tmp_path / "y/seq")
    args = specs[1].cli_args()
    assert args[:5] == ["run", "--data", str(tmp_path / "x/seq"), "--out", str(tmp_path / "out" / "seq" / "ttt3r")]
    assert args[-4:] == ["dataset.stride=3", "dataset.max_frames=90", "backend.sync=true", "frontend.name=ttt3r"]
    assert specs[0].protocol == "tum-dynamics" and "90 frames" in specs[0].scored
