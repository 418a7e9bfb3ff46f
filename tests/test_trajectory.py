"""Trajectory files: TUM and KITTI round trips, format detection, malformed input, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from slam.errors import DatasetError
from slam.trajectory import (
    Trajectory,
    detect_format,
    read_kitti,
    read_trajectory,
    read_tum,
    write_kitti_trajectory,
    write_trajectory,
    write_tum_trajectory,
)


def random_trajectory(n: int, seed: int = 0) -> Trajectory:
    rng = np.random.default_rng(seed)
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, :3, :3] = Rotation.random(n, random_state=seed).as_matrix()
    poses[:, :3, 3] = rng.normal(0, 5, (n, 3))
    stamps = 1305031102.175304 + np.cumsum(rng.uniform(0.02, 0.05, n))
    return Trajectory(stamps, poses)


def test_tum_round_trip(tmp_path):
    traj = random_trajectory(50)
    path = tmp_path / "out" / "traj.tum"
    write_tum_trajectory(path, traj)
    back = read_tum(path)
    assert len(back) == 50
    assert np.abs(back.timestamps - traj.timestamps).max() < 1e-6
    assert np.abs(back.poses - traj.poses).max() < 1e-8
    assert path.read_text().startswith("#")  # header comment is skipped on reading
    assert [p.name for p in path.parent.iterdir()] == ["traj.tum"]  # no temporary files left


def test_tum_skips_nan_rows_and_removes_similarity_scale(tmp_path):
    traj = random_trajectory(4)
    traj.poses[1] = np.nan
    traj.poses[2, :3, :3] *= 3.0  # Sim(3) pose: the rotation block carries a scale
    write_tum_trajectory(tmp_path / "t.txt", traj)
    back = read_tum(tmp_path / "t.txt")
    assert back.timestamps == pytest.approx(traj.timestamps[[0, 2, 3]], abs=1e-6)
    assert back.poses[1, :3, :3] == pytest.approx(traj.poses[2, :3, :3] / 3.0, abs=1e-8)
    assert back.poses[1, :3, 3] == pytest.approx(traj.poses[2, :3, 3], abs=1e-8)


def test_tum_reader_accepts_commas_and_comments(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("# t x y z qx qy qz qw\n\n1.0,1,2,3,0,0,0,1\n2.0 1 2 3 0 0 1 0  # rotated\n")
    traj = read_tum(path)
    assert traj.timestamps.tolist() == [1.0, 2.0]
    assert traj.poses[1, :3, :3] == pytest.approx(np.diag([-1.0, -1.0, 1.0]))


def test_kitti_round_trip_with_times(tmp_path):
    traj = random_trajectory(20, seed=3)
    write_kitti_trajectory(tmp_path / "00.txt", traj)
    (tmp_path / "times.txt").write_text("".join(f"{t:.9f}\n" for t in traj.timestamps))
    back = read_kitti(tmp_path / "00.txt", tmp_path / "times.txt")
    assert np.abs(back.poses - traj.poses).max() < 1e-7 * np.abs(traj.poses).max()
    assert back.timestamps == pytest.approx(traj.timestamps, abs=1e-6)
    by_index = read_kitti(tmp_path / "00.txt")
    assert by_index.timestamps.tolist() == list(range(20))
    assert len((tmp_path / "00.txt").read_text().splitlines()[0].split()) == 12


def test_detect_format_and_generic_io(tmp_path):
    traj = random_trajectory(5)
    write_trajectory(tmp_path / "a.txt", traj, "tum")
    write_trajectory(tmp_path / "b.txt", traj, "kitti")
    assert detect_format(tmp_path / "a.txt") == "tum"
    assert detect_format(tmp_path / "b.txt") == "kitti"
    assert read_trajectory(tmp_path / "b.txt").poses == pytest.approx(traj.poses, abs=1e-6)
    (tmp_path / "c.txt").write_text("1 2 3\n")
    with pytest.raises(DatasetError, match="line 1: 3 values; expected 8"):
        read_trajectory(tmp_path / "c.txt")


@pytest.mark.parametrize(
    "content, problem",
    [
        ("1 0 0 0 0 0 0 1\n2 0 0 0 0 0 1\n", "line 2: expected 8 values"),
        ("# c\n1 0 0 0 0 0 0 1\n2 0 x 0 0 0 0 1\n", "line 3: not a number"),
        ("1 0 0 0 0 0 0 0\n", "line 1: zero quaternion"),
        ("1 0 0 nan 0 0 0 1\n", "line 1: non-finite value"),
    ],
)
def test_malformed_tum(tmp_path, content, problem):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(DatasetError, match=problem) as err:
        read_tum(path)
    assert "bad.txt" in str(err.value)


def test_malformed_kitti_and_missing_file(tmp_path):
    path = tmp_path / "00.txt"
    path.write_text("1 0 0 0 0 1 0 0 0 0 1 0\n1 0 0 0 0 1 0 0 0 0 1\n")
    with pytest.raises(DatasetError, match="line 2: expected 12 values"):
        read_kitti(path)
    path.write_text("1 0 0 0 0 1 0 0 0 0 1 0\n")
    (tmp_path / "times.txt").write_text("0\n1\n")
    with pytest.raises(DatasetError, match="1 poses but 2 time stamps"):
        read_kitti(path, tmp_path / "times.txt")
    with pytest.raises(DatasetError, match="not found"):
        read_tum(tmp_path / "missing.txt")


def test_trajectory_validation_and_finite():
    with pytest.raises(ValueError):
        Trajectory(np.zeros(3), np.zeros((2, 4, 4)))
    traj = Trajectory(np.arange(3.0), np.tile(np.eye(4), (3, 1, 1)))
    traj.poses[0, 0, 3] = np.nan
    assert traj.finite().timestamps.tolist() == [1.0, 2.0]
    assert len(Trajectory(np.zeros(0), np.zeros((0, 4, 4)))) == 0
