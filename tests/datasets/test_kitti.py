"""KITTI odometry reader on a small sequence generated in the official layout."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from slam.datasets import DatasetConfig, detect_kind, open_dataset
from slam.datasets.kitti import KittiDataset
from slam.errors import DatasetError

W, H = 40, 20
P0 = np.array([[700.0, 0, 20.0, 0], [0, 700.0, 10.0, 0], [0, 0, 1, 0]])
P2 = np.array([[710.0, 0, 21.0, 44.8], [0, 711.0, 11.0, 0.2], [0, 0, 1, 0.003]])


def make_kitti(root: Path, n: int = 6, seq: str = "03", poses: bool = True, times: bool = True) -> Path:
    """<root>/sequences/<seq> with image_0 (grey) and image_2 (colour) frames, calib, times, poses."""
    seq_dir = root / "sequences" / seq
    for cam in ("image_0", "image_2"):
        (seq_dir / cam).mkdir(parents=True)
    for i in range(n):
        grey = np.full((H, W), 10 * i + 5, np.uint8)
        assert cv2.imwrite(str(seq_dir / "image_0" / f"{i:06d}.png"), grey)
        rgb = np.zeros((H, W, 3), np.uint8)
        rgb[..., 0] = 10 * i  # red
        rgb[..., 1] = 200
        assert cv2.imwrite(str(seq_dir / "image_2" / f"{i:06d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    calib = [f"P{k}: " + " ".join(f"{v:.12e}" for v in P.reshape(-1)) for k, P in enumerate((P0, P0, P2, P2))]
    calib.append("Tr: " + " ".join(["1 0 0 0 0 1 0 0 0 0 1 0"]))
    (seq_dir / "calib.txt").write_text("\n".join(calib) + "\n")
    if times:
        (seq_dir / "times.txt").write_text("".join(f"{0.103 * i:.6e}\n" for i in range(n)))
    if poses:
        (root / "poses").mkdir()
        rows = []
        for i in range(n):
            T = np.eye(4)
            T[:3, 3] = [0.1 * i, 0.05 * i * i, 1.5 * i]  # a gentle curve: not collinear (Umeyama needs rank 2)
            rows.append(" ".join(f"{v:.9e}" for v in T[:3].reshape(-1)))
        (root / "poses" / f"{seq}.txt").write_text("\n".join(rows) + "\n")
    return seq_dir


def test_sequence_folder_colour_camera(tmp_path):
    seq_dir = make_kitti(tmp_path / "kitti")
    assert detect_kind(seq_dir) == "kitti"
    ds = open_dataset(DatasetConfig(path=str(seq_dir)))
    assert isinstance(ds, KittiDataset) and ds.is_kitti and ds.camera == "image_2"
    assert ds.K == pytest.approx(P2[:, :3])
    frames = list(ds)
    assert len(ds) == len(frames) == 6
    assert [f.timestamp for f in frames] == pytest.approx([0.103 * i for i in range(6)])
    assert [int(f.rgb[0, 0, 0]) for f in frames] == [10 * i for i in range(6)]
    assert frames[0].rgb.shape == (H, W, 3) and int(frames[0].rgb[0, 0, 1]) == 200
    assert frames[4].gt_pose[:3, 3] == pytest.approx([0.4, 0.8, 6.0])
    assert frames[0].depth is None
    gt = ds.ground_truth()
    assert len(gt) == 6 and gt.positions[5] == pytest.approx([0.5, 1.25, 7.5])


def test_root_with_sequence_and_grey_camera(tmp_path):
    make_kitti(tmp_path / "kitti", seq="07")
    cfg = DatasetConfig(path=str(tmp_path / "kitti"), sequence="07", camera="image_0", stride=2)
    assert detect_kind(cfg.path) == "kitti"
    ds = open_dataset(cfg)
    assert ds.K == pytest.approx(P0[:, :3])
    frames = list(ds)
    assert len(frames) == 3
    rgb = frames[1].rgb
    assert rgb.shape == (H, W, 3) and (rgb == 25).all()  # frame 2: grey 25 replicated to 3 channels
    assert frames[1].timestamp == pytest.approx(0.206)
    assert ds.ground_truth().timestamps == pytest.approx([0.0, 0.206, 0.412])


def test_root_without_sequence_lists_sequences(tmp_path):
    make_kitti(tmp_path / "kitti", seq="05")
    with pytest.raises(DatasetError, match="sequences 05: set dataset.sequence"):
        open_dataset(DatasetConfig(path=str(tmp_path / "kitti")))
    with pytest.raises(DatasetError, match="sequence '09' not found"):
        open_dataset(DatasetConfig(path=str(tmp_path / "kitti"), sequence="09"))


def test_no_poses_and_no_times(tmp_path):
    seq_dir = make_kitti(tmp_path / "kitti", poses=False, times=False)
    ds = open_dataset(DatasetConfig(path=str(seq_dir)))
    assert not ds.has_ground_truth and ds.ground_truth() is None
    assert [f.timestamp for f in ds] == pytest.approx([0.1 * i for i in range(6)])
    assert all(f.gt_pose is None for f in ds)


def test_times_count_mismatch(tmp_path):
    seq_dir = make_kitti(tmp_path / "kitti")
    (seq_dir / "times.txt").write_text("0.0\n0.1\n")
    with pytest.raises(DatasetError, match="2 time stamps for 6 images") as err:
        open_dataset(DatasetConfig(path=str(seq_dir)))
    assert "times.txt" in str(err.value)


def test_malformed_calib(tmp_path):
    seq_dir = make_kitti(tmp_path / "kitti")
    (seq_dir / "calib.txt").write_text("P0: 1 2 3\n")
    with pytest.raises(DatasetError, match="line 1: P0 has 3 values, expected 12"):
        open_dataset(DatasetConfig(path=str(seq_dir), camera="image_0"))


def test_missing_camera_folder(tmp_path):
    seq_dir = make_kitti(tmp_path / "kitti")
    with pytest.raises(DatasetError, match="no camera folder image_3"):
        open_dataset(DatasetConfig(path=str(seq_dir), kind="kitti", camera="image_3"))
