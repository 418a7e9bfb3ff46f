"""``tools/real_data_table.py``'s plain Open3D baseline on a rendered sequence with exact ground truth."""

from __future__ import annotations

import math

from slam.synthetic import render_demo_sequence
from tests.conftest import load_tool


def test_open3d_frame_to_frame_baseline_tracks_a_rendered_loop(tmp_path):
    table = load_tool("real_data_table")
    seq = render_demo_sequence(tmp_path / "seq", n_frames=150, size=(120, 160), seed=1)
    assert table.rgbd_sequences(tmp_path) == [seq]
    row = table.open3d_f2f(seq, max_frames=30)  # small steps: 30 of the 150-frame loop
    assert row["setting"] == "Open3D f2f" and row["fps"] > 0
    assert math.isfinite(row["ate_se3_cm"]) and row["ate_se3_cm"] < 2.0  # exact depth: chained f2f is close
    assert row["ate_sim3_cm"] <= row["ate_se3_cm"] + 1e-9
