"""Image-folder and video inputs, and kind detection."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from slam.datasets import DatasetConfig, detect_kind, open_dataset
from slam.datasets.folder import FOLDER_FPS, FolderDataset
from slam.datasets.video import VideoDataset
from slam.errors import DatasetError, RegistryError

W, H = 64, 48


def frame_image(value: int, size=(W, H)) -> np.ndarray:
    """RGB image whose red channel is ``value`` and green is 255 - value (blue 0)."""
    img = np.zeros((size[1], size[0], 3), np.uint8)
    img[..., 0] = value
    img[..., 1] = 255 - value
    return img


def write_folder(root: Path, names: list[str], values: list[int]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, value in zip(names, values):
        assert cv2.imwrite(str(root / name), cv2.cvtColor(frame_image(value), cv2.COLOR_RGB2BGR))
    return root


# ------------------------------------------------------------------------------------------------ folder


def test_folder_natural_order_default_stamps_and_no_K(tmp_path):
    names = ["frame2.png", "frame10.PNG", "frame1.jpg", "frame3.bmp"]
    root = write_folder(tmp_path / "imgs", names, [20, 100, 10, 30])
    (root / "notes.txt").write_text("not an image")
    assert detect_kind(root) == "folder"
    ds = open_dataset(DatasetConfig(path=str(root)))
    assert isinstance(ds, FolderDataset)
    frames = list(ds)
    assert len(ds) == len(frames) == 4
    # natural order: frame1, frame2, frame3, frame10 (jpg is lossy, hence the tolerance)
    assert [int(f.rgb[..., 0].mean()) for f in frames] == pytest.approx([10, 20, 30, 100], abs=3)
    assert [f.timestamp for f in frames] == pytest.approx([i / FOLDER_FPS for i in range(4)])
    assert all(f.K is None and f.depth is None and f.gt_pose is None for f in frames)
    assert frames[0].rgb.shape == (H, W, 3) and frames[0].rgb.dtype == np.uint8


def test_folder_times_calibration_and_stride(tmp_path):
    root = write_folder(tmp_path / "imgs", [f"{i:03d}.png" for i in range(5)], [0, 10, 20, 30, 40])
    (root / "times.txt").write_text("".join(f"{100 + 0.5 * i}\n" for i in range(5)))
    (root / "calibration.txt").write_text("60 61 32 24\n")
    ds = open_dataset(DatasetConfig(path=str(root), stride=2, first=1))
    frames = list(ds)
    assert [int(f.rgb[0, 0, 0]) for f in frames] == [10, 30]
    assert [f.timestamp for f in frames] == pytest.approx([100.5, 101.5])
    assert frames[0].K == pytest.approx(np.array([[60, 0, 32], [0, 61, 24], [0, 0, 1]]))
    assert [f.index for f in frames] == [0, 1]


def test_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="cannot tell the dataset kind"):
        open_dataset(DatasetConfig(path=str(tmp_path / "empty")))
    with pytest.raises(DatasetError, match="no images"):
        open_dataset(DatasetConfig(path=str(tmp_path / "empty"), kind="folder"))
    with pytest.raises(RegistryError, match="unknown dataset 'nope'"):
        open_dataset(DatasetConfig(path=str(tmp_path / "empty"), kind="nope"))
    with pytest.raises(DatasetError, match="not found"):
        open_dataset(DatasetConfig(path=str(tmp_path / "missing")))

    root = write_folder(tmp_path / "imgs", ["a.png", "b.png"], [0, 10])
    cv2.imwrite(str(root / "c.png"), np.zeros((H // 2, W // 2, 3), np.uint8))
    with pytest.raises(DatasetError, match="32x24 but the first image is 64x48") as err:
        list(open_dataset(DatasetConfig(path=str(root))))
    assert "c.png" in str(err.value)

    (root / "times.txt").write_text("0\n1\n")
    with pytest.raises(DatasetError, match="2 time stamps for 3 images"):
        open_dataset(DatasetConfig(path=str(root)))


# ------------------------------------------------------------------------------------------------- video


def write_video(path: Path, values: list[int], fps: float = 15.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    assert writer.isOpened()
    for value in values:
        writer.write(cv2.cvtColor(frame_image(value), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_video_reads_frames_and_stamps(tmp_path):
    values = [20 * i for i in range(10)]
    path = write_video(tmp_path / "clip.avi", values, fps=15.0)
    assert detect_kind(path) == "video"
    ds = open_dataset(DatasetConfig(path=str(path), intrinsics=[50, 50, 32, 24]))
    assert isinstance(ds, VideoDataset) and len(ds) == 10
    frames = list(ds)
    assert len(frames) == 10
    assert [float(f.rgb[..., 0].mean()) for f in frames] == pytest.approx(values, abs=3)
    assert [float(f.rgb[..., 2].mean()) for f in frames] == pytest.approx([0] * 10, abs=3)  # RGB, not BGR
    assert [f.timestamp for f in frames] == pytest.approx([i / 15.0 for i in range(10)], abs=1e-6)
    assert frames[0].rgb.shape == (H, W, 3) and frames[0].K[0, 0] == 50
    # iterating twice gives the same stream
    assert len(list(ds)) == 10


def test_video_first_stride_max_frames(tmp_path):
    path = write_video(tmp_path / "clip.avi", [20 * i for i in range(10)])
    ds = open_dataset(DatasetConfig(path=str(path), first=1, stride=3, max_frames=3))
    frames = list(ds)
    assert len(ds) == len(frames) == 3
    assert [f.index for f in frames] == [0, 1, 2]
    assert [float(f.rgb[..., 0].mean()) for f in frames] == pytest.approx([20, 80, 140], abs=3)
    assert [f.timestamp for f in frames] == pytest.approx([1 / 15, 4 / 15, 7 / 15], abs=1e-6)
    assert frames[0].K is None


def test_video_errors(tmp_path):
    with pytest.raises(DatasetError, match="video file not found"):
        open_dataset(DatasetConfig(path=str(tmp_path / "missing.mp4"), kind="video"))
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"definitely not a video" * 50)
    with pytest.raises(DatasetError, match="cannot open video") as err:
        open_dataset(DatasetConfig(path=str(bad)))
    assert "bad.avi" in str(err.value)
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(DatasetError, match="not a video"):
        open_dataset(DatasetConfig(path=str(other)))
