"""TUM RGB-D reader: association, intrinsics, depth, ground truth, frame selection, errors, real ICL data."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from slam.datasets import DatasetConfig, open_dataset
from slam.datasets.tum import TUM_INTRINSICS, TumDataset, associate, nearest_within
from slam.errors import DatasetError

W, H = 32, 24


def write_rgb(path: Path, value: int, size=(W, H)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.zeros((size[1], size[0], 3), np.uint8)
    img[..., 0] = value  # red channel carries the frame's identity
    img[..., 2] = 255 - value
    assert cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


def write_depth(path: Path, raw: int, size=(W, H)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((size[1], size[0]), raw, np.uint16))


def make_tum(root: Path, rgb_stamps, depth_stamps=None, gt_stamps=None, calibration: str | None = "500 501 16 12"):
    """A TUM-layout folder: rgb i has red value 10*i, depth j has raw value 1000*(j+1)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["# color images", "# timestamp filename"]
    for i, t in enumerate(rgb_stamps):
        write_rgb(root / "rgb" / f"{t:.6f}.png", 10 * i)
        lines.append(f"{t:.6f} rgb/{t:.6f}.png")
    (root / "rgb.txt").write_text("\n".join(lines) + "\n")
    if depth_stamps is not None:
        lines = ["# depth maps"]
        for j, t in enumerate(depth_stamps):
            write_depth(root / "depth" / f"{t:.6f}.png", 1000 * (j + 1))
            lines.append(f"{t:.6f} depth/{t:.6f}.png")
        (root / "depth.txt").write_text("\n".join(lines) + "\n")
    if gt_stamps is not None:
        lines = ["# timestamp tx ty tz qx qy qz qw"]
        for k, t in enumerate(gt_stamps):
            lines.append(f"{t:.6f} {k} {2 * k} 0 0 0 0 1")
        (root / "groundtruth.txt").write_text("\n".join(lines) + "\n")
    if calibration is not None:
        (root / "calibration.txt").write_text(calibration + "\n")
    return root


def test_associate_is_one_to_one_and_nearest():
    a = np.array([0.00, 0.04, 0.05, 0.30])
    b = np.array([0.047, 0.001, 0.31])  # unsorted on purpose
    # 0.05 is closer to 0.047 than 0.04 is, so 0.04 loses it; 0.30 <-> 0.31 is exactly 0.01 apart.
    assert associate(a, b, 0.02) == [(0, 1), (2, 0), (3, 2)]
    assert associate(a, b, 0.005) == [(0, 1), (2, 0)]


def test_nearest_within():
    ref = np.array([0.0, 1.0, 2.0])
    got = nearest_within(np.array([-0.05, 0.4, 0.6, 1.95, 2.5]), ref, 0.45)
    assert got.tolist() == [0, 0, 1, 2, -1]  # 0.4 is nearer 0.0, 2.5 is 0.5 from 2.0


def test_rgb_depth_association_with_unequal_stamps(tmp_path, caplog):
    rgb = [0.000, 0.033, 0.066, 0.100, 0.133, 0.200]
    depth = [0.004, 0.030, 0.104, 0.140, 0.500]  # nothing near 0.066 or 0.200
    root = make_tum(tmp_path / "seq", rgb, depth)
    with caplog.at_level(logging.WARNING):
        ds = open_dataset(DatasetConfig(path=str(root)))
    assert isinstance(ds, TumDataset) and ds.has_depth
    assert "2 of 6 rgb frames have no depth" in caplog.text
    frames = list(ds)
    assert len(ds) == len(frames) == 4
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert [f.timestamp for f in frames] == pytest.approx([0.000, 0.033, 0.100, 0.133])
    # rgb identity (red = 10 * rgb index) and depth identity (raw 1000 * (depth index + 1) / 5000 m)
    assert [int(f.rgb[0, 0, 0]) for f in frames] == [0, 10, 30, 40]
    assert [float(f.depth[0, 0]) for f in frames] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    f = frames[0]
    assert f.rgb.shape == (H, W, 3) and f.rgb.dtype == np.uint8
    assert f.depth.shape == (H, W) and f.depth.dtype == np.float32
    assert f.source.endswith("0.000000.png")


def test_depth_scale_override(tmp_path):
    root = make_tum(tmp_path / "seq", [0.0], [0.0])
    ds = open_dataset(DatasetConfig(path=str(root), depth_scale=1000.0))
    assert float(next(iter(ds)).depth[0, 0]) == pytest.approx(1.0)


def test_rgb_only_without_depth_txt(tmp_path):
    root = make_tum(tmp_path / "seq", [0.0, 0.1, 0.2])
    ds = open_dataset(DatasetConfig(path=str(root)))
    assert not ds.has_depth and len(ds) == 3
    assert all(f.depth is None for f in ds)


def test_ground_truth_nearest_within_max_diff(tmp_path):
    rgb = [0.0, 0.1, 0.2, 0.3]
    gt = [0.005, 0.095, 0.31]  # nothing within 0.02 of 0.2
    root = make_tum(tmp_path / "seq", rgb, rgb, gt)
    ds = open_dataset(DatasetConfig(path=str(root), max_time_diff=0.02))
    assert ds.has_ground_truth
    frames = list(ds)
    assert frames[2].gt_pose is None
    assert frames[1].gt_pose[:3, 3] == pytest.approx([1, 2, 0])
    assert frames[3].gt_pose[:3, 3] == pytest.approx([2, 4, 0])
    traj = ds.ground_truth()  # one row per streamed frame, NaN where no pose matched
    assert traj.timestamps.tolist() == pytest.approx(rgb)
    assert np.isnan(traj.poses[2]).all()
    finite = traj.finite()
    assert finite.timestamps.tolist() == pytest.approx([0.0, 0.1, 0.3])
    assert finite.positions[:, 0].tolist() == pytest.approx([0, 1, 2])


@pytest.mark.parametrize("camera", ["1", "2", "3"])
def test_freiburg_presets_from_folder_name(tmp_path, camera):
    root = make_tum(tmp_path / f"rgbd_dataset_freiburg{camera}_desk", [0.0], calibration=None)
    ds = open_dataset(DatasetConfig(path=str(root)))
    fx, fy, cx, cy = TUM_INTRINSICS[camera]
    assert next(iter(ds)).K == pytest.approx(np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]]))


def test_intrinsics_from_calibration_txt_and_config_override(tmp_path):
    root = make_tum(tmp_path / "eth3d_like", [0.0], calibration="500 501 16 12")
    K = open_dataset(DatasetConfig(path=str(root))).K
    assert K == pytest.approx(np.array([[500, 0, 16], [0, 501, 12], [0, 0, 1]]))
    K = open_dataset(DatasetConfig(path=str(root), intrinsics=[100, 101, 15, 11])).K
    assert K == pytest.approx(np.array([[100, 0, 15], [0, 101, 11], [0, 0, 1]]))


def test_no_intrinsics_is_a_clear_error(tmp_path):
    root = make_tum(tmp_path / "unknown_camera", [0.0], calibration=None)
    with pytest.raises(DatasetError, match="intrinsics"):
        open_dataset(DatasetConfig(path=str(root)))


def test_frame_selection_first_last_stride_max_frames(tmp_path):
    stamps = [i * 0.1 for i in range(10)]
    root = make_tum(tmp_path / "seq", stamps, stamps, stamps)
    ds = open_dataset(DatasetConfig(path=str(root), first=1, last=8, stride=2, max_frames=3))
    frames = list(ds)
    assert len(ds) == len(frames) == 3
    assert [f.index for f in frames] == [0, 1, 2]
    assert [f.timestamp for f in frames] == pytest.approx([0.1, 0.3, 0.5])
    assert [int(f.rgb[0, 0, 0]) for f in frames] == [10, 30, 50]
    assert ds.ground_truth().timestamps.tolist() == pytest.approx([0.1, 0.3, 0.5])
    ds = open_dataset(DatasetConfig(path=str(root), first=6, last=7))
    assert [int(f.rgb[0, 0, 0]) for f in ds] == [60, 70]


# ------------------------------------------------------------------------------------------------ errors


def test_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="not found") as err:
        TumDataset(DatasetConfig(path=str(tmp_path / "nope")))
    assert "nope" in str(err.value)


def test_missing_rgb_txt(tmp_path):
    (tmp_path / "seq").mkdir()
    with pytest.raises(DatasetError, match="no rgb.txt") as err:
        TumDataset(DatasetConfig(path=str(tmp_path / "seq")))
    assert "seq" in str(err.value)


def test_unreadable_image(tmp_path):
    root = make_tum(tmp_path / "seq", [0.0, 0.1])
    (root / "rgb" / "0.100000.png").write_bytes(b"this is not a png")
    frames = iter(open_dataset(DatasetConfig(path=str(root))))
    next(frames)
    with pytest.raises(DatasetError, match="cannot decode image") as err:
        next(frames)
    assert "0.100000.png" in str(err.value)


def test_depth_of_wrong_size(tmp_path):
    root = make_tum(tmp_path / "seq", [0.0], [0.0])
    write_depth(root / "depth" / "0.000000.png", 1000, size=(W // 2, H // 2))
    with pytest.raises(DatasetError, match="depth image is 16x12") as err:
        list(open_dataset(DatasetConfig(path=str(root))))
    assert str(root / "depth" / "0.000000.png") in str(err.value)


def test_malformed_ground_truth_line(tmp_path):
    root = make_tum(tmp_path / "seq", [0.0, 0.1], [0.0, 0.1], [0.0, 0.1])
    with open(root / "groundtruth.txt", "a") as f:
        f.write("0.2 1 2 3 0 0 0\n")  # 7 values
    with pytest.raises(DatasetError, match="line 4: expected 8 values") as err:
        open_dataset(DatasetConfig(path=str(root)))
    assert "groundtruth.txt" in str(err.value)


def test_malformed_rgb_txt_line(tmp_path):
    root = make_tum(tmp_path / "seq", [0.0])
    (root / "rgb.txt").write_text("# header\nabc rgb/0.000000.png\n")
    with pytest.raises(DatasetError, match="line 2"):
        open_dataset(DatasetConfig(path=str(root)))


# ---------------------------------------------------------------------------------------------- real data


def test_icl_sequence_loads_with_calibration(icl_dir):
    ds = open_dataset(DatasetConfig(path=str(icl_dir)))
    assert isinstance(ds, TumDataset)
    assert len(ds) == 211
    assert ds.K == pytest.approx(np.array([[525.0, 0, 319.5], [0, 525.0, 239.5], [0, 0, 1]]))
    assert ds.has_depth and ds.has_ground_truth and len(ds.ground_truth()) == 211
    count = 0
    for frame in ds:
        count += 1
        if frame.index in (0, 210):
            assert frame.rgb.shape == (480, 640, 3) and frame.depth.shape == (480, 640)
            valid = frame.depth[frame.depth > 0]
            assert 0.3 < np.median(valid) < 10.0  # metres, i.e. factor 5000 applied
            assert frame.gt_pose.shape == (4, 4)
    assert count == 211


def test_saturated_depth_code_reads_as_invalid(tmp_path):
    import cv2

    from slam.datasets.io import read_depth_png

    raw = np.array([[0, 5000, 65535], [65534, 1, 10000]], dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), raw)
    depth = read_depth_png(tmp_path / "d.png", 5000.0)
    assert depth.dtype == np.float32
    assert depth[0, 0] == 0 and depth[0, 2] == 0  # no return, saturated
    assert depth[0, 1] == 1.0 and depth[1, 2] == 2.0 and depth[1, 0] == np.float32(65534) / np.float32(5000)
