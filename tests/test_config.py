"""Config layering (defaults <- dataset <- frontend <- --config <- key=value) and validation errors."""

from __future__ import annotations

import pytest
import yaml

from slam.config import CONFIG_DIR, load_run_config, write_run_yaml
from slam.errors import ConfigError
from tests.make_data import write_tum_sequence


@pytest.fixture()
def tum_dir(tmp_path):
    return write_tum_sequence(tmp_path / "seq")


def test_layers_apply_in_order(tmp_path, tum_dir):
    user = tmp_path / "user.yaml"
    user.write_text("dataset:\n  stride: 3\n  max_frames: 7\n")
    cfg = load_run_config(user, data=tum_dir, out=tmp_path / "out", overrides=["dataset.stride=5"])
    assert cfg.dataset.kind == "tum"  # detected from rgb.txt
    assert cfg.dataset.depth_scale is None  # the dataset's own default (TUM: 5000) applies
    assert cfg.dataset.stride == 5  # command line beats the user file
    assert cfg.dataset.max_frames == 7  # user file beats the defaults
    assert cfg.dataset.first == 0  # default
    assert cfg.output.dir == str(tmp_path / "out")
    assert cfg.frontend.name == "rgbd"


def test_frontend_layer_follows_the_chosen_name(tmp_path, tum_dir):
    configs = tmp_path / "configs"
    (configs / "frontends").mkdir(parents=True)
    (configs / "datasets").mkdir()
    (configs / "default.yaml").write_text((CONFIG_DIR / "default.yaml").read_text())
    (configs / "frontends" / "rgbd.yaml").write_text("frontend:\n  name: rgbd\ndataset:\n  stride: 4\n")
    (configs / "datasets" / "tum.yaml").write_text("dataset:\n  depth_scale: 1000\n  stride: 3\n")
    cfg = load_run_config(None, data=tum_dir, overrides=["frontend.name=rgbd"], config_dir=configs)
    assert cfg.dataset.stride == 4  # the frontend layer beats the dataset layer
    assert cfg.dataset.depth_scale == 1000.0  # configs/datasets/<kind>.yaml follows the detected kind
    cfg = load_run_config(None, data=tum_dir, overrides=["frontend=rgbd", "dataset.stride=2"], config_dir=configs)
    assert cfg.dataset.stride == 2


def test_unknown_key_in_file_names_key_and_file(tmp_path, tum_dir):
    user = tmp_path / "bad.yaml"
    user.write_text("dataset:\n  strid: 2\n")
    with pytest.raises(ConfigError) as err:
        load_run_config(user, data=tum_dir)
    assert "dataset.strid" in str(err.value) and str(user) in str(err.value)


def test_unknown_key_on_command_line(tum_dir):
    with pytest.raises(ConfigError) as err:
        load_run_config(None, data=tum_dir, overrides=["output.folder=x"])
    assert "output.folder" in str(err.value) and "command line" in str(err.value)


def test_unknown_section(tum_dir):
    with pytest.raises(ConfigError, match="unknown config key 'bogus'"):
        load_run_config(None, data=tum_dir, overrides=["bogus.x=1"])


def test_wrong_type_names_key(tum_dir):
    with pytest.raises(ConfigError, match="dataset.stride.*integer"):
        load_run_config(None, data=tum_dir, overrides=["dataset.stride=fast"])


def test_bad_yaml_names_file_and_line(tmp_path, tum_dir):
    user = tmp_path / "broken.yaml"
    user.write_text("dataset:\n  stride: [1, 2\n")
    with pytest.raises(ConfigError) as err:
        load_run_config(user, data=tum_dir)
    assert str(user) in str(err.value) and "line" in str(err.value)


def test_unknown_frontend(tum_dir):
    with pytest.raises(ConfigError, match="unknown frontend 'nope'"):
        load_run_config(None, data=tum_dir, overrides=["frontend.name=nope"])


def test_bad_override_syntax(tum_dir):
    with pytest.raises(ConfigError, match="expected key=value"):
        load_run_config(None, data=tum_dir, overrides=["dataset.stride"])


def test_viz_shorthand(tum_dir):
    cfg = load_run_config(None, data=tum_dir, overrides=["viz=save"])
    assert cfg.viz.mode == "save"
    assert load_run_config(None, data=tum_dir, overrides=["viz=off"]).viz.mode == "off"


def test_unquoted_off_in_yaml_and_on_words_for_bools(tmp_path, tum_dir):
    user = tmp_path / "user.yaml"
    user.write_text("viz:\n  mode: off\n")
    cfg = load_run_config(user, data=tum_dir, overrides=["backend.sync=yes"])
    assert cfg.viz.mode == "off" and cfg.backend.sync is True


def test_run_yaml_round_trip(tmp_path, tum_dir):
    cfg = load_run_config(None, data=tum_dir, overrides=["dataset.stride=2", "dataset.intrinsics=[1, 2, 3, 4]"])
    path = tmp_path / "run.yaml"
    write_run_yaml(cfg, path)
    text = path.read_text()
    assert yaml.safe_load(text)["dataset"]["stride"] == 2
    again = load_run_config(path)
    assert again.to_dict() == cfg.to_dict()
    assert again.dataset.intrinsics == [1.0, 2.0, 3.0, 4.0]


def test_section_validation_blames_the_layer_that_set_the_value(tmp_path, tum_dir):
    """A value rejected by a section's validate() is blamed on where that key was set, not on the file that
    set other keys of the section (configs/frontends/rgbd.yaml sets backend.keyframe.stride)."""
    with pytest.raises(ConfigError, match=r"^command line: .*downsample"):
        load_run_config(None, data=tum_dir, overrides=["frontend.rgbd.downsample=0"])
    user = tmp_path / "user.yaml"
    user.write_text("backend:\n  keyframe:\n    stride: 0\n")
    with pytest.raises(ConfigError, match=rf"^{user}: .*stride"):
        load_run_config(user, data=tum_dir)


def _row(text: str, key: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.split()[:1] == [key])
    return line.split()


def test_slam_config_lists_every_key_with_value_type_default_and_source(capsys, tmp_path, tum_dir):
    from slam.cli import main

    assert main(["config", "--data", str(tum_dir), "dataset.stride=2"]) == 0
    text = capsys.readouterr().out
    assert _row(text, "dataset.stride") == ["dataset.stride", "2", "int", "1", "command", "line"]
    assert _row(text, "dataset.kind")[:2] == ["dataset.kind", "tum"]
    assert _row(text, "backend.keyframe.stride")[1:4] == ["2", "int", "8"]  # configs/frontends/rgbd.yaml
    assert _row(text, "backend.keyframe.stride")[4].endswith("configs/frontends/rgbd.yaml")
    assert _row(text, "frontend.cut3r.device")[1:] == ["cpu", "str", "cpu", "default"]
    assert len(text.splitlines()) > 100  # every section, every registered frontend's options
    assert main(["config", "--defaults"]) == 0
    defaults = capsys.readouterr().out
    assert _row(defaults, "backend.keyframe.stride")[1:] == ["8", "int", "8", "default"]
    assert main(["config", "frontend.rgbd.downsample=0"]) == 2
    assert "command line" in capsys.readouterr().err


def test_run_yaml_reproduces_a_relative_run_from_another_folder(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    import numpy as np

    from slam.trajectory import read_tum

    repo = Path(__file__).resolve().parents[1]
    write_tum_sequence(tmp_path / "seq", n=6)
    env = dict(os.environ, PYTHONPATH=str(repo))

    def slam(cwd, *args):
        proc = subprocess.run([sys.executable, "-m", "slam.cli", "run", "--quiet", *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr

    slam(tmp_path, "--data", "seq", "--out", "first", "backend.sync=true")
    resolved = yaml.safe_load((tmp_path / "first" / "run.yaml").read_text())
    assert resolved["dataset"]["path"] == str(tmp_path / "seq") and resolved["output"]["dir"] == str(tmp_path / "first")
    slam("/", "--config", str(tmp_path / "first" / "run.yaml"), "--out", str(tmp_path / "second"))
    first, second = read_tum(tmp_path / "first" / "trajectory.tum"), read_tum(tmp_path / "second" / "trajectory.tum")
    assert len(first.poses) == 6 and np.allclose(first.poses, second.poses, atol=1e-5)  # written with 6 decimals
