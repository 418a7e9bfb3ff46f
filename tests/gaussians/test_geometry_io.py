"""Pose normalisation, to_world, SH rotation, the 3DGS PLY round trip and the small renderer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from mapping.gaussians.ply import read_gaussian_ply, write_gaussian_ply
from mapping.gaussians.render import render_torch
from mapping.gaussians.sh import C0
from mapping.tttlrm import normalize_poses, to_world


def _poses(n=6, seed=0):
    rng = np.random.default_rng(seed)
    out = np.tile(np.eye(4), (n, 1, 1))
    out[:, :3, :3] = Rotation.from_rotvec(rng.normal(0, 0.3, (n, 3))).as_matrix()
    out[:, :3, 3] = rng.normal(0, 2.0, (n, 3)) + [5.0, -3.0, 1.0]
    return out


@pytest.mark.parametrize("mode", ["full", "ar"])
def test_normalize_poses_definition(mode):
    c2w = _poses()
    c2w_n, anchor, scale = normalize_poses(c2w, mode)
    rel = np.linalg.inv(anchor) @ c2w
    np.testing.assert_allclose(c2w_n[:, :3, :3], rel[:, :3, :3], atol=1e-6)
    np.testing.assert_allclose(c2w_n[:, :3, 3], rel[:, :3, 3] / scale, atol=1e-6)
    assert np.abs(c2w_n[:, :3, 3]).max() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(anchor[:3, :3] @ anchor[:3, :3].T, np.eye(3), atol=1e-12)
    if mode == "ar":
        np.testing.assert_allclose(c2w_n[0], np.eye(4), atol=1e-6)
    else:
        np.testing.assert_allclose(anchor[:3, 3], c2w[:, :3, 3].mean(0), atol=1e-12)
        perm = np.random.default_rng(1).permutation(len(c2w))  # the mean camera ignores the view order
        _, anchor_p, scale_p = normalize_poses(c2w[perm], mode)
        np.testing.assert_allclose(anchor_p, anchor, atol=1e-12)
        assert scale_p == pytest.approx(scale)


def _gaussians(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return {"means": rng.normal(0, 1, (1, n, 3)), "sh": rng.normal(0, 0.3, (1, n, 16, 3)),
            "log_scales": rng.normal(-2.5, 0.3, (1, n, 3)), "quats": rng.normal(0, 1, (1, n, 4)),
            "opacity_logits": rng.normal(0, 1, (1, n, 1))}


def test_to_world_inverts_the_normalisation():
    c2w = _poses()
    c2w_n, anchor, scale = normalize_poses(c2w, "full")
    g = _gaussians()
    w = to_world(g, anchor, scale)
    # a Gaussian at a normalised camera centre lands on the world camera centre
    cam = to_world({"means": c2w_n[:, :3, 3].astype(np.float64)}, anchor, scale)["means"]
    np.testing.assert_allclose(cam, c2w[:, :3, 3], atol=1e-5)
    np.testing.assert_allclose(w["log_scales"], g["log_scales"] + np.log(scale))
    np.testing.assert_array_equal(w["opacity_logits"], g["opacity_logits"])
    np.testing.assert_allclose(w["sh"][..., 0, :], g["sh"][..., 0, :], atol=1e-12)  # DC is rotation-invariant
    r_w = Rotation.from_quat(np.roll(w["quats"][0], -1, axis=-1)).as_matrix()  # scipy: x y z w
    r_n = Rotation.from_quat(np.roll(g["quats"][0], -1, axis=-1)).as_matrix()
    np.testing.assert_allclose(r_w, anchor[:3, :3] @ r_n, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(w["quats"], axis=-1), np.linalg.norm(g["quats"], axis=-1))
    tw = to_world({k: torch.from_numpy(v).float() for k, v in g.items()}, torch.from_numpy(anchor), scale)
    assert tw["means"].dtype == torch.float32 and tw["means"].shape == (1, 40, 3)
    np.testing.assert_allclose(tw["means"].numpy(), w["means"], rtol=1e-5, atol=1e-5)


def test_world_render_equals_normalised_render_with_sh_bands():
    """Rendering the world-frame map from a world camera equals rendering the normalised map from the normalised
    camera: checks means, scales, quaternions and the rotation of SH bands 1-3 together."""
    c2w = _poses(4, seed=3)
    c2w_n, anchor, scale = normalize_poses(c2w, "full")
    rng = np.random.default_rng(5)
    n = 30
    cam_n = c2w_n[0].astype(np.float64)
    pts = rng.uniform([-0.4, -0.3, 1.0], [0.4, 0.3, 2.0], (n, 3))  # in front of camera 0
    g = {"means": (pts @ cam_n[:3, :3].T + cam_n[:3, 3])[None], "sh": rng.normal(0, 0.4, (1, n, 16, 3)),
         "log_scales": np.full((1, n, 3), -2.5) + rng.normal(0, 0.2, (1, n, 3)),
         "quats": rng.normal(0, 1, (1, n, 4)), "opacity_logits": rng.normal(1, 0.5, (1, n, 1))}
    K = torch.tensor([[30.0, 0, 16.0], [0, 30.0, 12.0], [0, 0, 1]])
    img_n = render_torch({k: torch.from_numpy(v) for k, v in g.items()}, torch.from_numpy(cam_n), K, 24, 32)
    w = to_world(g, anchor, scale)
    img_w = render_torch({k: torch.from_numpy(v) for k, v in w.items()}, torch.from_numpy(c2w[0]), K, 24, 32)
    assert (img_n < 0.95).float().mean() > 0.2  # the Gaussians cover the view
    np.testing.assert_allclose(img_w.numpy(), img_n.numpy(), atol=2e-4)
    unrotated = render_torch({**{k: torch.from_numpy(v) for k, v in w.items()}, "sh": torch.from_numpy(g["sh"])},
                             torch.from_numpy(c2w[0]), K, 24, 32)
    assert np.abs(unrotated.numpy() - img_n.numpy()).max() > 1e-2  # the bands matter


def test_ply_round_trip(tmp_path):
    g = {k: v[0].astype(np.float32) for k, v in _gaussians(17).items()}
    path = write_gaussian_ply(tmp_path / "g.ply", g["means"], g["sh"], g["opacity_logits"], g["log_scales"],
                              g["quats"])
    header = path.read_bytes().split(b"end_header\n")[0].decode()
    names = [line.split()[-1] for line in header.splitlines() if line.startswith("property")]
    assert names[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert names[9:54] == [f"f_rest_{i}" for i in range(45)]
    assert names[54:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    back = read_gaussian_ply(path)
    for key in ("means", "sh", "log_scales", "quats"):
        np.testing.assert_array_equal(back[key], g[key])
    np.testing.assert_array_equal(back["opacity_logits"], g["opacity_logits"][:, 0])
    # channel-major f_rest: f_rest_{ch*15 + k-1} = sh[k, ch]
    table = np.frombuffer(path.read_bytes()[len(header) + len("end_header\n"):], dtype="<f4").reshape(17, 62)
    assert table[3, 9 + 2 * 15 + 4] == g["sh"][3, 5, 2]


def test_ply_empty_map(tmp_path):
    z = np.zeros((0, 3), np.float32)
    path = write_gaussian_ply(tmp_path / "e.ply", z, np.zeros((0, 16, 3), np.float32), np.zeros(0, np.float32), z,
                              np.zeros((0, 4), np.float32))
    back = read_gaussian_ply(path)
    assert back["means"].shape == (0, 3) and back["sh"].shape == (0, 16, 3)


def _dc(rgb):
    sh = np.zeros((16, 3))
    sh[0] = (np.asarray(rgb, dtype=np.float64) - 0.5) / C0
    return sh


def test_renderer_three_gaussian_scene():
    """Red in front of green on the optical axis, blue to the side, white background."""
    logit = lambda p: float(np.log(p / (1 - p)))  # noqa: E731
    g = {"means": torch.tensor([[0.0, 0, 3.0], [0.0, 0, 2.0], [0.63, 0, 2.1]]),  # green (far), red, blue
         "sh": torch.from_numpy(np.stack([_dc([0, 1, 0]), _dc([1, 0, 0]), _dc([0, 0, 1])])),
         "log_scales": torch.log(torch.tensor([[0.2, 0.2, 0.2], [0.1, 0.1, 0.1], [0.1, 0.1, 0.1]])),
         "quats": torch.tensor([[1.0, 0, 0, 0], [0.7, 0.1, 0.2, 0.3], [2.0, 0, 0, 0]]),
         "opacity_logits": torch.tensor([[logit(0.9)], [logit(0.6)], [logit(0.8)]])}
    K = torch.tensor([[40.0, 0, 16.5], [0, 40.0, 16.5], [0, 0, 1]])
    img = render_torch(g, torch.eye(4), K, 33, 33)
    # centre pixel (16, 16) samples (16.5, 16.5): both axis Gaussians project there, alpha = opacity exactly
    expected = 0.6 * np.array([1, 0, 0]) + 0.4 * 0.9 * np.array([0, 1, 0]) + 0.4 * 0.1 * np.ones(3)
    np.testing.assert_allclose(img[16, 16].numpy(), expected, atol=1e-5)
    # blue projects to column 16.5 + 40 * 0.63 / 2.1 = 28.5 -> pixel 28; the others are 12 px away (alpha < 1/255)
    np.testing.assert_allclose(img[16, 28].numpy(), 0.8 * np.array([0, 0, 1]) + 0.2, atol=1e-5)
    assert 0.2 < img[16, 26, 2] - img[16, 26, 0] < 0.8  # on blue's flank: partly blue
    np.testing.assert_allclose(img[0, 0].numpy(), [1, 1, 1], atol=1e-6)  # background
    perm = [2, 0, 1]  # the input order does not matter: sorted by depth
    img_p = render_torch({k: v[perm] for k, v in g.items()}, torch.eye(4), K, 33, 33)
    np.testing.assert_allclose(img_p.numpy(), img.numpy(), atol=1e-6)
    behind = render_torch(g, torch.tensor([[-1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, -1, 0], [0, 0, 0, 1]]), K, 33, 33)
    np.testing.assert_allclose(behind.numpy(), 1.0)  # all Gaussians behind the camera
