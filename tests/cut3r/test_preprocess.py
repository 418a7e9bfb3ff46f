"""Official image preprocessing (spec §3.1), intrinsics under resize/crop, Weiszfeld focal."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from frontends.cut3r.preprocess import normalize_uint8, preprocess_frame, working_geometry
from frontends.cut3r.focal import estimate_focal_weiszfeld, intrinsics_from_focal
from slam.camera import ResizeCrop, crop_intrinsics, scale_intrinsics
from slam.errors import ConfigError

# (input W x H) -> (resized W x H, output W x H) at 512, from the spec's table (computed with Pillow).
SPEC_512 = [
    ((640, 480), (512, 384), (512, 384)),
    ((1280, 720), (512, 288), (512, 288)),
    ((1920, 1080), (512, 288), (512, 288)),
    ((848, 480), (512, 290), (512, 288)),
    ((752, 480), (512, 327), (512, 320)),
    ((1241, 376), (512, 155), (512, 144)),
    ((480, 640), (384, 512), (384, 512)),
    ((333, 500), (341, 512), (336, 512)),
    ((512, 512), (512, 512), (512, 384)),
    ((1024, 1024), (512, 512), (512, 384)),
]


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    channels = [np.sin(2 * np.pi * (rng.uniform(0.5, 2) * x + rng.uniform(0.5, 2) * y + rng.uniform())) for _ in range(3)]
    return ((np.stack(channels, -1) * 0.45 + 0.5) * 255).round().astype(np.uint8)


@pytest.mark.parametrize(("src", "resized", "out"), SPEC_512)
def test_working_geometry_matches_official_table(src, resized, out):
    g = working_geometry((src[1], src[0]), 512)
    assert g.resized_size == (resized[1], resized[0])
    assert g.out_size == (out[1], out[0])
    assert g.out_size[0] % 16 == 0 and g.out_size[1] % 16 == 0
    # centred crop (official box: cx - halfw with cx = W//2)
    assert g.crop_left == resized[0] // 2 - out[0] // 2 and g.crop_top == resized[1] // 2 - out[1] // 2
    g224 = working_geometry((src[1], src[0]), 224)
    assert g224.out_size == (224, 224) and min(g224.resized_size) == 224


def test_224_short_side_rule():
    g = working_geometry((480, 640), 224)
    assert g.resized_size == (224, 299)  # L = round(224 * 4/3) = 299 is the long side
    assert (g.crop_top, g.crop_left) == (0, 149 - 112)


def test_normalisation_is_bit_exact_with_fixture_inputs(fixtures_dir):
    with np.load(fixtures_dir / "inputs_land_64x48.npz") as data:
        u8, img = data["img_uint8"], data["img"]
    for i in range(len(u8)):
        assert torch.equal(normalize_uint8(u8[i]), torch.from_numpy(img[i:i + 1]))
        # at working size 64 a 64x48 image is neither resized nor cropped
        pre = preprocess_frame(u8[i], size=64)
        assert torch.equal(pre.tensor, torch.from_numpy(img[i:i + 1]))
        assert np.array_equal(pre.rgb, u8[i])


def test_pil_resize_uses_official_filters():
    rgb = smooth_image(480, 640)
    pre = preprocess_frame(rgb, 512)
    expected = np.asarray(Image.fromarray(rgb).resize((512, 384), Image.Resampling.LANCZOS))
    assert np.array_equal(pre.rgb, expected)
    assert pre.tensor.shape == (1, 3, 384, 512) and pre.tensor.dtype == torch.float32
    assert float(pre.tensor.min()) >= -1.0 and float(pre.tensor.max()) <= 1.0
    small = smooth_image(120, 160)  # upscaling -> BICUBIC
    up = preprocess_frame(small, 512)
    assert np.array_equal(up.rgb, np.asarray(Image.fromarray(small).resize((512, 384), Image.Resampling.BICUBIC)))


@pytest.mark.parametrize(("width", "height"), [wh for wh, _, _ in SPEC_512 if wh[0] >= wh[1]] + [(160, 120)])
@pytest.mark.parametrize("size", [512, 224])
def test_device_preprocessing_equals_pil_for_landscape_frames(width, height, size):
    """The ``torch`` path (Pillow's filters computed with torch) gives the official tensor bit for bit."""
    rgb = smooth_image(height, width, seed=width + height)
    a, b = preprocess_frame(rgb, size, "pil"), preprocess_frame(rgb, size, "torch")
    assert a.transform == b.transform
    assert np.array_equal(a.rgb, b.rgb)
    assert torch.equal(a.tensor, b.tensor)


@pytest.mark.parametrize(("width", "height"), [wh for wh, _, _ in SPEC_512 if wh[0] < wh[1]] + [(41, 87)])
def test_device_preprocessing_portrait_within_two_grey_levels(width, height):
    rgb = smooth_image(height, width, seed=width)
    a, b = preprocess_frame(rgb, 512, "pil"), preprocess_frame(rgb, 512, "torch")
    assert a.transform == b.transform
    assert np.abs(a.rgb.astype(int) - b.rgb.astype(int)).max() <= 2


def test_auto_resampling_uses_pil_on_cpu():
    rgb = smooth_image(480, 640, seed=1)
    pre = preprocess_frame(rgb, 512, "auto", device="cpu")
    assert isinstance(pre.image, np.ndarray)  # the CPU path keeps numpy (Pillow)
    assert pre.tensor.device.type == "cpu"


def test_bad_inputs():
    with pytest.raises(ValueError, match="uint8"):
        preprocess_frame(np.zeros((48, 64, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        preprocess_frame(np.zeros((48, 64), np.uint8))
    with pytest.raises(ConfigError, match="resample"):
        preprocess_frame(np.zeros((48, 64, 3), np.uint8), resample="nearest")


# --------------------------------------------------------------------------- intrinsics
def _project(K, X):
    x = X @ K.T
    return x[:, :2] / x[:, 2:3]


def test_resize_crop_maps_projections_consistently():
    """A 3-D point projects to the same image content before and after preprocessing."""
    K = np.array([[525.0, 0, 319.5], [0, 525.0, 239.5], [0, 0, 1]])
    g = working_geometry((480, 640), 224)
    K_out = g.K_to_output(K)
    X = np.random.default_rng(0).uniform([-1, -1, 1], [1, 1, 4], size=(50, 3))
    uv_src = _project(K, X)
    uv_out = _project(K_out, X)
    assert np.allclose(g.pixels_to_source(uv_out), uv_src, atol=1e-9)
    assert np.allclose(g.K_to_source(K_out), K, atol=1e-12)


def test_scale_intrinsics_pixel_centre_convention():
    K = np.array([[100.0, 0, 49.5], [0, 100.0, 29.5], [0, 0, 1]])  # centred in a 100x60 image
    K2 = scale_intrinsics(K, (60, 100), (30, 50))
    assert np.allclose(K2, [[50, 0, 24.5], [0, 50, 14.5], [0, 0, 1]])  # still centred in 50x30
    assert np.allclose(crop_intrinsics(K2, top=5, left=10)[:2, 2], [14.5, 9.5])
    rc = ResizeCrop((60, 100), (30, 50), 5, 10, (20, 30))
    assert np.allclose(rc.K_to_output(K), crop_intrinsics(K2, 5, 10))


def test_weiszfeld_recovers_a_known_focal():
    h, w, f = 48, 64, 57.0
    rng = np.random.default_rng(1)
    depth = rng.uniform(1.0, 5.0, size=(h, w))
    v, u = np.mgrid[0:h, 0:w]
    points = np.stack([(u - w // 2) / f * depth, (v - h // 2) / f * depth, depth], -1).astype(np.float32)
    assert estimate_focal_weiszfeld(points) == pytest.approx(f, rel=1e-4)
    # robust to a minority of wrong points
    noisy = points.copy()
    mask = rng.random((h, w)) < 0.1
    noisy[mask] *= rng.uniform(0.3, 3.0, size=(int(mask.sum()), 3)).astype(np.float32)
    assert estimate_focal_weiszfeld(noisy) == pytest.approx(f, rel=0.03)
    K = intrinsics_from_focal(f, (h, w))
    assert np.allclose(K, [[f, 0, 32], [0, f, 24], [0, 0, 1]])


def test_weiszfeld_handles_degenerate_points():
    points = np.zeros((16, 16, 3), np.float32)  # z = 0 everywhere -> ratios are NaN -> 0
    assert estimate_focal_weiszfeld(points) == 0.0
    with pytest.raises(ValueError, match="pointmap"):
        estimate_focal_weiszfeld(np.zeros((16, 16), np.float32))
