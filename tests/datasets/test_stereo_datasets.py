"""Stereo input: the KITTI partner camera and calibration, the stereo folder layout, and their errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from slam.datasets import DatasetConfig, detect_kind, open_dataset
from slam.errors import DatasetError
from tests.frontends.stereo_scene import write_calib
from tests.test_cli_errors import assert_one_line_error, slam

W, H = 40, 20
K = np.array([[700.0, 0, 20.0], [0, 700.0, 10.0], [0, 0, 1]])
BASELINE = 0.54


def make_stereo_kitti(root: Path, n: int = 4, cams=("image_0", "image_1"), calib=("P0", "P1", "P2", "P3")) -> Path:
    seq = root / "sequences" / "05"
    for cam in cams:
        (seq / cam).mkdir(parents=True)
        for i in range(n):
            value = 10 * i + (0 if cam in ("image_0", "image_2") else 100)
            assert cv2.imwrite(str(seq / cam / f"{i:06d}.png"), np.full((H, W), value, np.uint8))
    write_calib(seq / "calib.txt", K, BASELINE, calib)
    return seq


def test_grey_pair_with_baseline_from_p0_p1(tmp_path):
    seq = make_stereo_kitti(tmp_path)
    ds = open_dataset(DatasetConfig(path=str(seq)))
    assert ds.camera == "image_0" and ds.baseline == pytest.approx(BASELINE)
    frames = list(ds)
    assert [int(f.right[0, 0, 0]) for f in frames] == [100 + 10 * i for i in range(4)]
    assert frames[2].baseline == pytest.approx(BASELINE) and frames[2].right.shape == (H, W, 3)


def test_colour_pair_is_the_default_when_present(tmp_path):
    seq = make_stereo_kitti(tmp_path, cams=("image_0", "image_1", "image_2", "image_3"))
    ds = open_dataset(DatasetConfig(path=str(seq)))
    assert ds.camera == "image_2" and ds.is_stereo
    assert open_dataset(DatasetConfig(path=str(seq), camera="image_0")).camera == "image_0"


def test_missing_partner_image_names_the_file(tmp_path):
    seq = make_stereo_kitti(tmp_path)
    (seq / "image_1" / "000002.png").rename(seq / "image_1" / "000009.png")
    with pytest.raises(DatasetError, match="000002.png"):
        open_dataset(DatasetConfig(path=str(seq)))


def test_mismatched_counts(tmp_path):
    seq = make_stereo_kitti(tmp_path)
    (seq / "image_1" / "000003.png").unlink()
    with pytest.raises(DatasetError, match="3 right images for 4 left images") as err:
        open_dataset(DatasetConfig(path=str(seq)))
    assert "image_1" in str(err.value)


def test_missing_p_line_names_the_calibration(tmp_path):
    seq = make_stereo_kitti(tmp_path, calib=("P0", "P2", "P3"))
    with pytest.raises(DatasetError, match="no P1") as err:
        open_dataset(DatasetConfig(path=str(seq)))
    assert "calib.txt" in str(err.value)
    # a monocular run does not need P1
    assert open_dataset(DatasetConfig(path=str(seq), stereo=False)).baseline is None


def test_stereo_required_without_partner_folder(tmp_path):
    seq = make_stereo_kitti(tmp_path, cams=("image_0",))
    assert open_dataset(DatasetConfig(path=str(seq))).baseline is None
    with pytest.raises(DatasetError, match="partner folder"):
        open_dataset(DatasetConfig(path=str(seq), stereo=True))


def test_cli_error_is_one_line(tmp_path):
    seq = make_stereo_kitti(tmp_path)
    (seq / "image_1" / "000001.png").unlink()
    assert_one_line_error(slam("run", "--data", str(seq), "frontend=stereo", "--out", str(tmp_path / "o")),
                          "image_1", "3 right images")


def make_stereo_folder(root: Path, n: int = 3, calibration: str = f"700 700 20 10 {BASELINE}\n") -> Path:
    for side, offset in (("left", 0), ("right", 100)):
        (root / side).mkdir(parents=True)
        for i in range(n):
            assert cv2.imwrite(str(root / side / f"f{i}.png"), np.full((H, W, 3), offset + i, np.uint8))
    (root / "calibration.txt").write_text(calibration)
    return root


def test_stereo_folder(tmp_path):
    root = make_stereo_folder(tmp_path / "pair")
    assert detect_kind(root) == "stereo"
    frames = list(open_dataset(DatasetConfig(path=str(root))))
    assert len(frames) == 3 and frames[1].baseline == pytest.approx(BASELINE)
    assert int(frames[1].right[0, 0, 0]) == 101 and frames[1].K == pytest.approx(K)


@pytest.mark.parametrize("calibration, needle", [("700 700 20 10\n", "expected 5 values"),
                                                 ("700 700 20 10 -0.5\n", "baseline must be > 0")])
def test_stereo_folder_bad_calibration(tmp_path, calibration, needle):
    root = make_stereo_folder(tmp_path / "pair", calibration=calibration)
    with pytest.raises(DatasetError, match=needle) as err:
        open_dataset(DatasetConfig(path=str(root)))
    assert "calibration.txt" in str(err.value)


def test_stereo_folder_missing_right_image(tmp_path):
    root = make_stereo_folder(tmp_path / "pair")
    (root / "right" / "f1.png").rename(root / "right" / "g1.png")
    with pytest.raises(DatasetError, match="f1.png"):
        open_dataset(DatasetConfig(path=str(root)))


def test_stereo_folder_without_the_partner(tmp_path):
    root = make_stereo_folder(tmp_path / "pair")
    (root / "right" / "f1.png").unlink()  # not read at all
    frames = list(open_dataset(DatasetConfig(path=str(root), stereo=False)))
    assert len(frames) == 3 and all(f.right is None for f in frames)
    assert int(frames[2].rgb[0, 0, 0]) == 2


@pytest.mark.parametrize("overrides, stereo", [
    (["frontend=rgbd"], False),
    (["frontend=stereo"], None),
    (["frontend=perturbed", "frontend.perturbed.inner=stereo"], None),
    (["frontend=perturbed", "frontend.perturbed.inner=rgbd"], False),
    (["frontend=rgbd", "dataset.stereo=true"], True),
])
def test_partner_images_are_read_only_for_frontends_that_use_them(tmp_path, overrides, stereo):
    from slam.config import load_run_config
    from slam.pipeline import Pipeline

    seq = make_stereo_kitti(tmp_path)
    cfg = load_run_config(data=str(seq), overrides=overrides)
    assert Pipeline(cfg, progress=False)._dataset_config().stereo is stereo


def test_plugin_factory_that_is_not_a_frontend_class_counts_as_reading_the_pair(monkeypatch):
    import frontends
    from frontends.base import FRONTENDS, FrontendSpec

    assert frontends.reads_stereo_pair("rgbd") is False and frontends.reads_stereo_pair("stereo") is True
    monkeypatch.setitem(FRONTENDS._items, "made_by_function", FrontendSpec(lambda cfg: None, dict, "x"))
    assert frontends.reads_stereo_pair("made_by_function") is True
