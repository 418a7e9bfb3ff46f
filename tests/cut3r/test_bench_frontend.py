"""The frontend benchmark tool runs and writes the documented JSON (tiny size, two frames)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import load_tool

@pytest.fixture(scope="module")
def bench():
    return load_tool("bench_frontend")


def test_tiny_benchmark_writes_json(bench, tmp_path, capsys, monkeypatch):
    from dataclasses import replace

    tiny_dpt, hw = bench.model_config("tiny")
    assert tiny_dpt.head_type == "dpt" and hw == (48, 64)
    # the same machinery on the (much cheaper) linear head keeps this test fast
    monkeypatch.setattr(bench, "model_config", lambda size: (replace(tiny_dpt, head_type="linear"), hw))
    out = tmp_path / "bench.json"
    assert bench.main(["--size", "tiny", "--frames", "2", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(data) == {"cut3r", "ttt3r", "ttsa3r"}
    for rule, figures in data.items():
        assert figures["ms_per_frame"] > 0 and figures["peak_mem_mb"] > 0 and figures["frames_timed"] == 1
        assert figures["input_hw"] == [48, 64]
    assert data["cut3r"]["ratio_vs_cut3r"] == 1.0
    table = capsys.readouterr().out
    assert "ttsa3r" in table and "x cut3r" in table


def test_bad_arguments(bench, capsys):
    assert bench.main(["--frames", "1"]) == 2
    assert "--warmup" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--size", "huge"])


def test_rule_subset_bf16_and_memory_series(bench, tmp_path, monkeypatch):
    from dataclasses import replace

    tiny_dpt, hw = bench.model_config("tiny")
    monkeypatch.setattr(bench, "model_config", lambda size: (replace(tiny_dpt, head_type="linear"), hw))
    out = tmp_path / "bench.json"
    assert bench.main(["--frames", "5", "--rules", "ttsa3r", "--autocast", "bf16", "--drift-from", "2",
                       "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert list(data) == ["ttsa3r"]
    figures = data["ttsa3r"]
    assert figures["autocast"] == "bf16" and figures["compile"] is False
    assert len(figures["mem_series_mb"]) == 4 and figures["mem_drift_pct"] >= 0
    assert figures["frames_per_second"] > 0
    assert figures["omp_wait_policy"]  # recorded (PASSIVE unless the environment chose one)


def test_unknown_rule_is_a_clean_error(bench, capsys):
    assert bench.main(["--frames", "2", "--rules", "ttsa3r,foo"]) == 2
    assert "unknown rule" in capsys.readouterr().err
