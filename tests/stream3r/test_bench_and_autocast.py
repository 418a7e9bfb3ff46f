"""``tools/bench_frontend.py --frontend stream3r`` (tiny size) and the bf16 autocast path (run on CPU here)."""

from __future__ import annotations

import json

import numpy as np
import torch

from tests.conftest import load_tool


def test_stream3r_benchmark_writes_per_frame_figures(tmp_path, capsys):
    bench = load_tool("bench_frontend")
    out = tmp_path / "bench.json"
    layout = tmp_path / "model"
    assert bench.main(["--frontend", "stream3r", "--size", "tiny", "--frames", "3", "--json", str(out),
                       "--official-layout", str(layout)]) == 0
    data = json.loads(out.read_text())
    assert set(data) == {"causal", "window"}
    for figures in data.values():
        assert figures["frames_timed"] == 2 and len(figures["ms"]) == 3 and len(figures["peak_mb"]) == 3
        assert figures["ms_per_frame"] > 0 and figures["input_hw"] == [42, 70] and figures["official_layout"]
    assert (layout / "config.json").is_file() and (layout / "model.safetensors").is_file()
    assert "window" in capsys.readouterr().out
    assert bench.main(["--frontend", "stream3r", "--size", "512"]) == 2


def test_bf16_autocast_keeps_heads_in_float32(tiny_net):
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.random((3, 3, 28, 42), dtype=np.float32))
    ref = tiny_net.session(mode="window", window=2)
    low = tiny_net.session(mode="window", window=2, autocast_dtype=torch.bfloat16)
    for i in range(3):
        a, b = ref.step(x[i:i + 1]), low.step(x[i:i + 1])
        assert b["world_points"].dtype == torch.float32 and b["pose_enc"].dtype == torch.float32
        diff = (a["depth"] - b["depth"]).abs().max().item()
        assert 0 < diff < 0.5  # bf16 moves the outputs a little, not arbitrarily
