"""The hardening corpus (issue 17): every bad input ends in one ``error:`` line naming the file or key and
exit code 2 (or exit 0 with a warning where the result is still meaningful); no traceback without --debug.

Runs ``slam.cli.main`` in-process (fast); subprocess cases are in test_signals.py and test_writes.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from slam.cli import main
from slam.trajectory import read_tum
from tests.hardening.corpus import sequence_with_depth, shuffle_lines
from tests.make_data import write_tum_sequence


def run_cli(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


def error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture()
def seq(tmp_path):
    return write_tum_sequence(tmp_path / "seq", n=6)


# ---------------------------------------------------------------------------------- 4. values not validated
@pytest.mark.parametrize("override, key", [
    ("dataset.stride=0", "dataset.stride"),
    ("dataset.stride=-1", "dataset.stride"),
    ("dataset.max_frames=-2", "dataset.max_frames"),
    ("dataset.max_frames=0", "dataset.max_frames"),
    ("dataset.first=-1", "dataset.first"),
    ("dataset.depth_scale=0", "dataset.depth_scale"),
    ("dataset.depth_scale=-5000", "dataset.depth_scale"),
    ("dataset.depth_scale=.nan", "dataset.depth_scale"),
    ("dataset.max_time_diff=0", "dataset.max_time_diff"),
    ("dataset.intrinsics=[0,1,2,3]", "dataset.intrinsics"),
    ("output.flush_every=-1", "output.flush_every"),
    ("output.flush_seconds=-1", "output.flush_seconds"),
    ("frontend.rgbd.depth_max=0", "frontend.rgbd.depth_max"),
    ("frontend.rgbd.downsample=0", "frontend.rgbd.downsample"),
    ("backend.keyframe.stride=0", "backend.keyframe.stride"),
    ("backend.global_alignment.max_distance=0", "backend.global_alignment.max_distance"),
    ("mapping.voxel_size=-1", "mapping.voxel_size"),
    ("viz.port=0", "viz.port"),
])
def test_out_of_range_value_names_key_and_source(capsys, tmp_path, seq, override, key):
    code, err = run_cli(capsys, "run", "--data", seq, "--out", tmp_path / "out", "--quiet", override)
    line = error_line(err)
    assert code == 2 and key in line and "command line" in line


def test_first_after_last(capsys, tmp_path, seq):
    code, err = run_cli(capsys, "run", "--data", seq, "--out", tmp_path / "out", "dataset.first=4",
                        "dataset.last=2")
    assert code == 2 and "dataset.last" in error_line(err)


def test_first_beyond_the_end(capsys, tmp_path, seq):
    code, err = run_cli(capsys, "run", "--data", seq, "--out", tmp_path / "out", "dataset.first=60")
    line = error_line(err)
    assert code == 2 and "dataset.first" in line and str(seq) in line


def test_bad_value_in_user_config_names_that_file(capsys, tmp_path, seq):
    user = tmp_path / "mine.yaml"
    user.write_text("dataset:\n  stride: 0\n")
    code, err = run_cli(capsys, "run", "--config", user, "--data", seq, "--out", tmp_path / "out")
    line = error_line(err)
    assert code == 2 and str(user) in line and "dataset.stride" in line


def test_config_ranges_are_checked_for_every_section():
    """Every numeric field with a declared range rejects a value outside it (generic mechanism)."""
    import dataclasses

    from slam.config import _section_classes
    from slam.config_loader import build
    from slam.errors import ConfigError

    checked = 0
    for section, cls in _section_classes().items():
        for f in dataclasses.fields(cls):
            rng = f.metadata.get("range")
            if rng is None:
                continue
            bad = (rng.ge - 1) if rng.ge is not None else (rng.gt if rng.gt is not None else None)
            if bad is None:
                continue
            with pytest.raises(ConfigError, match=f"{section}.{f.name}"):
                build(cls, {f.name: bad}, {f"{section}.{f.name}": "test"}, f"{section}.")
            checked += 1
    assert checked >= 6


# ---------------------------------------------------------------- 5. errors blaming the right place
def test_sequence_00_stays_a_string(seq):
    from slam.config import load_run_config

    cfg = load_run_config(None, data=seq, overrides=["dataset.sequence=00"])
    assert cfg.dataset.sequence == "00"


def test_sequence_00_in_a_yaml_file_stays_a_string(tmp_path, seq):
    from slam.config import load_run_config

    user = tmp_path / "k.yaml"
    user.write_text("dataset:\n  sequence: 00\n  max_time_diff: 0.03\n")
    cfg = load_run_config(user, data=seq)
    assert cfg.dataset.sequence == "00" and cfg.dataset.max_time_diff == 0.03
    assert type(cfg.dataset.max_time_diff) is float


def test_bom_in_rgb_txt_is_accepted(capsys, tmp_path, seq):
    rgb = seq / "rgb.txt"
    rgb.write_bytes(b"\xef\xbb\xbf" + rgb.read_bytes())
    code, _ = run_cli(capsys, "run", "--data", seq, "--out", tmp_path / "out", "--quiet", "backend.sync=true")
    assert code == 0 and len(read_tum(tmp_path / "out" / "trajectory.tum")) == 6


def test_bom_in_user_config_is_accepted(tmp_path, seq):
    from slam.config import load_run_config

    user = tmp_path / "bom.yaml"
    user.write_bytes(b"\xef\xbb\xbf" + b"dataset:\n  stride: 2\n")
    assert load_run_config(user, data=seq).dataset.stride == 2


def test_eval_association_error_names_both_files(capsys, tmp_path):
    est, gt = tmp_path / "est.tum", tmp_path / "gt.tum"
    est.write_text("".join(f"{t} 0 0 0 0 0 0 1\n" for t in range(5)))
    gt.write_text("".join(f"{t + 1000} {t} 0 0 0 0 0 1\n" for t in range(5)))
    code, err = run_cli(capsys, "eval", est, gt, "--out", tmp_path / "o")
    line = error_line(err)
    assert code == 2 and str(est) in line and str(gt) in line


def test_write_failure_names_the_path(tmp_path):
    from slam.atomic import write_text_atomic

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError) as err:
        write_text_atomic(blocker / "trajectory.tum", "data")
    assert str(blocker / "trajectory.tum") == err.value.filename


def test_output_folder_under_a_file(capsys, tmp_path, seq):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = run_cli(capsys, "run", "--data", seq, "--out", blocker / "out", "--quiet")
    assert code == 2 and str(blocker) in error_line(err)


# ------------------------------------------------------------------------------------ 2. numeric guards
@pytest.mark.parametrize("raw, extra", [(0, []), (65535, []), (5000, ["dataset.depth_scale=1"])],
                         ids=["all-zero", "all-65535", "wrong-units"])
def test_depth_without_usable_pixel_is_refused(capsys, tmp_path, raw, extra):
    seq = sequence_with_depth(tmp_path / "seq", raw)
    out = tmp_path / "out"
    code, err = run_cli(capsys, "run", "--data", seq, "--out", out, "--quiet", "backend.sync=true", *extra)
    line = error_line(err)
    assert code == 2 and str(seq) in line and "dataset.depth_scale" in line
    assert (out / "run.yaml").is_file()
    assert len(read_tum(out / "trajectory.tum")) == 4  # the frames before the 5th empty depth map are kept


def test_all_zero_depth_with_odometry_backend_is_refused(capsys, tmp_path):
    seq = sequence_with_depth(tmp_path / "seq", 0)
    code, err = run_cli(capsys, "run", "--data", seq, "--out", tmp_path / "out", "--quiet", "backend=odometry")
    assert code == 2 and "depth" in error_line(err)


def test_some_frames_without_depth_warn_and_finish(capsys, tmp_path, caplog):
    seq = sequence_with_depth(tmp_path / "seq", 0, n=10, frames=range(4, 6))
    out = tmp_path / "out"
    code, err = run_cli(capsys, "run", "--data", seq, "--out", out, "--quiet", "backend.sync=true")
    assert code == 0 and "2 of 10 depth maps had no usable pixel" in err + caplog.text  # in-process: logged
    traj = read_tum(out / "trajectory.tum")
    assert len(traj) == 10 and np.isfinite(traj.poses).all()


def test_alignment_copes_with_a_keyframe_without_points():
    from backends.global_alignment import _virtual
    from backends.projective import PointView

    empty = PointView(np.zeros((4, 4, 3)), np.zeros((4, 4), bool), np.zeros((4, 4)), np.eye(3),
                      np.zeros(0, dtype=np.int64))
    y_s, y_d, w, sig, _, _ = _virtual(empty, np.eye(4), np.eye(4), np.eye(4), 0.01, 1.0)
    assert len(y_s) == len(y_d) == len(w) == len(sig) == 0


def test_nan_checkpoint_is_refused():
    from frontends.cut3r.checkpoint import check_state_dict
    from slam.errors import CheckpointError

    expected = {"a.weight": torch.zeros(2, 2), "b.bias": torch.zeros(2)}
    good = {"a.weight": torch.ones(2, 2), "b.bias": torch.ones(2)}
    check_state_dict(expected, good, "model.pth")
    bad = {"a.weight": torch.full((2, 2), float("nan")), "b.bias": torch.ones(2)}
    with pytest.raises(CheckpointError, match="a.weight") as err:
        check_state_dict(expected, bad, "model.pth")
    assert "model.pth" in str(err.value) and "NaN" in str(err.value)


def test_non_finite_frontend_pose_stops_cleanly(capsys, tmp_path, seq, monkeypatch):
    from frontends.rgbd.frontend import RgbdFrontend

    original = RgbdFrontend.step

    def step(self, frame):
        out = original(self, frame)
        if frame.index == 3:
            out.pose = np.full((4, 4), np.nan)
        return out

    monkeypatch.setattr(RgbdFrontend, "step", step)
    out = tmp_path / "out"
    code, err = run_cli(capsys, "run", "--data", seq, "--out", out, "--quiet", "backend.sync=true")
    assert code == 2 and "non-finite" in error_line(err)
    assert len(read_tum(out / "trajectory.tum")) == 3


@pytest.mark.parametrize("frames", ["0", "1", "-4"])
def test_demo_with_too_few_frames(capsys, tmp_path, frames):
    code, err = run_cli(capsys, "demo", "--frames", frames, "--out", tmp_path / "demo")
    assert code == 2 and "--frames" in error_line(err)


# ------------------------------------------------------------------------ 3. silently wrong results
def test_unsorted_rgb_txt_is_processed_in_time_order(capsys, tmp_path, seq, caplog):
    shuffle_lines(seq / "rgb.txt")
    shuffle_lines(seq / "depth.txt", seed=1)
    out = tmp_path / "out"
    code, err = run_cli(capsys, "run", "--data", seq, "--out", out, "--quiet", "backend.sync=true")
    assert code == 0 and "not in time order" in err + caplog.text
    stamps = read_tum(out / "trajectory.tum").timestamps
    assert len(stamps) == 6 and (np.diff(stamps) > 0).all()


def test_eval_on_shuffled_estimate_sorts_and_says_so(capsys, tmp_path, caplog):
    rng = np.random.default_rng(0)
    t = np.arange(30) / 10.0
    gt_lines = [f"{s:.3f} {np.sin(s):.6f} {s * s / 10:.6f} {0.1 * s:.6f} 0 0 0 1" for s in t]
    est_lines = [f"{s:.3f} {np.sin(s) + rng.normal(0, 0.01):.6f} {s * s / 10:.6f} {0.1 * s:.6f} 0 0 0 1" for s in t]
    gt, est, shuffled = tmp_path / "gt.tum", tmp_path / "est.tum", tmp_path / "shuffled.tum"
    gt.write_text("\n".join(gt_lines) + "\n")
    est.write_text("\n".join(est_lines) + "\n")
    shuffled.write_text("\n".join(est_lines[i] for i in rng.permutation(len(est_lines))) + "\n")
    assert run_cli(capsys, "eval", est, gt, "--out", tmp_path / "a")[0] == 0
    code, err = run_cli(capsys, "eval", shuffled, gt, "--out", tmp_path / "b")
    assert code == 0 and f"{shuffled}: poses are not in time order" in err + caplog.text
    from slam.evaluation import EVAL_METRICS_FILE

    a = json.loads((tmp_path / "a" / EVAL_METRICS_FILE).read_text())
    b = json.loads((tmp_path / "b" / EVAL_METRICS_FILE).read_text())
    assert b["rpe_trans_rmse"] == pytest.approx(a["rpe_trans_rmse"]) and b["n_matched"] == 30


# ------------------------------------------------------------------------------------------------ 6. tools
def _tool(capsys, name, *args):
    from slam.entry import tool_main
    from tests.conftest import load_tool

    code = tool_main(load_tool(name).main, [str(a) for a in args])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


def test_eval_backend_icl_missing_path(capsys, tmp_path):
    code, err = _tool(capsys, "eval_backend_icl", tmp_path / "nowhere")
    assert code == 2 and str(tmp_path / "nowhere") in error_line(err)


def test_convert_checkpoint_output_under_a_file(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    (tmp_path / "in.pth").write_bytes(b"not a checkpoint")
    code, err = _tool(capsys, "convert_checkpoint", tmp_path / "in.pth", "-o", blocker / "out.safetensors")
    assert code == 2 and str(blocker) in error_line(err)


def test_convert_checkpoint_binary_config(capsys, tmp_path):
    (tmp_path / "in.pth").write_bytes(b"not a checkpoint")
    cfg = tmp_path / "model.cfg"
    cfg.write_bytes(b"\x00\xff\xfe binary")
    code, err = _tool(capsys, "convert_checkpoint", tmp_path / "in.pth", "--config", cfg)
    assert code == 2 and str(cfg) in error_line(err)


def test_tool_traceback_only_with_debug(capsys, tmp_path):
    code, err = _tool(capsys, "eval_backend_icl", tmp_path / "nowhere")
    assert code == 2
    from slam.entry import tool_main
    from tests.conftest import load_tool

    assert tool_main(load_tool("eval_backend_icl").main, [str(tmp_path / "nowhere"), "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_internal_errors_are_one_line_without_debug(capsys):
    from slam.entry import report_errors

    def boom():
        raise RuntimeError("unexpected\nsecond line")

    assert report_errors(boom) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("error: internal error")


def test_every_tool_uses_the_shared_error_contract():
    """Each user-facing script in tools/ runs its main through slam.entry.tool_main (one helper, no copies)."""
    from tests.conftest import REPO

    scripts = sorted((REPO / "tools").glob("*.py"))
    assert scripts
    missing = [p.name for p in scripts if "tool_main(" not in p.read_text()]
    assert not missing, f"tools without slam.entry.tool_main: {missing}"


def test_image_size_change_mid_sequence_is_refused(capsys, tmp_path, seq):
    import cv2

    rgb = sorted((seq / "rgb").glob("*.png"))[3]
    depth = sorted((seq / "depth").glob("*.png"))[3]
    cv2.imwrite(str(rgb), np.zeros((60, 80, 3), np.uint8))
    cv2.imwrite(str(depth), np.full((60, 80), 5000, np.uint16))
    out = tmp_path / "out"
    code, err = run_cli(capsys, "run", "--data", seq, "--out", out, "--quiet", "backend.sync=true")
    assert code == 2 and rgb.name in error_line(err) and "80x60" in error_line(err)
    assert len(read_tum(out / "trajectory.tum")) == 3  # the frames before it are kept


def test_scientific_notation_is_a_number(seq):
    """YAML 1.1 reads ``1e-3`` (no dot) as a string; float keys accept it, as a user would expect."""
    from slam.config import load_run_config

    cfg = load_run_config(None, data=seq, overrides=["dataset.max_time_diff=1e-3", "mapping.voxel_size=2E-2"])
    assert cfg.dataset.max_time_diff == 1e-3 and cfg.mapping.voxel_size == 0.02
