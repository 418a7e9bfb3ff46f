"""``kernels.resample.resize_uint8`` against Pillow's ``Image.resize`` (its reference), on CPU and CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from kernels.resample import fixed_point_weights, resize_uint8

FILTERS = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                  reason="needs CUDA"))]


def natural_image(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    base = 127 + 80 * np.sin(xx / 6.0)[..., None] * np.cos(yy / 4.0)[..., None] * np.array([1.0, 0.7, -0.5])
    return np.clip(base + rng.normal(0, 25, (height, width, 3)), 0, 255).astype(np.uint8)


def pil_resize(image: np.ndarray, size_hw: tuple[int, int], filter_name: str) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size_hw[1], size_hw[0]), FILTERS[filter_name]))


def ours(image: np.ndarray, size_hw: tuple[int, int], filter_name: str, device: str = "cpu") -> np.ndarray:
    tensor = torch.from_numpy(image).permute(2, 0, 1).contiguous().to(device)
    return resize_uint8(tensor, size_hw, filter_name).permute(1, 2, 0).cpu().numpy()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("src", "dst", "filter_name"), [
    ((480, 640), (384, 512), "lanczos"),    # VGA -> CUT3R 512
    ((376, 1241), (155, 512), "lanczos"),   # KITTI -> CUT3R 512
    ((480, 640), (224, 299), "lanczos"),    # VGA -> CUT3R 224 (short side)
    ((48, 64), (384, 512), "bicubic"),      # enlarging
    ((100, 80), (111, 89), "bicubic"),      # enlarging, odd sizes
    ((37, 53), (74, 106), "lanczos"),       # enlarging with Lanczos
    ((64, 64), (32, 32), "bicubic"),        # square
])
def test_equals_pillow_bit_for_bit(device, src, dst, filter_name):
    for seed in range(3):
        image = natural_image(*src, seed=seed)
        if seed == 2:  # pure noise: every overshoot of the filters' negative lobes gets clipped
            image = np.random.default_rng(seed).integers(0, 256, (*src, 3), dtype=np.uint8)
        assert np.array_equal(ours(image, dst, filter_name, device), pil_resize(image, dst, filter_name))


def test_one_side_only_runs_one_pass():
    image = natural_image(40, 60, seed=4)
    for dst in ((40, 45), (25, 60)):
        assert np.array_equal(ours(image, dst, "lanczos"), pil_resize(image, dst, "lanczos"))


def test_fixed_point_weights_sum_to_one():
    for n_in, n_out in ((640, 512), (64, 512), (17, 5)):
        w = fixed_point_weights(n_in, n_out, "lanczos")
        assert np.all(np.abs(w.sum(axis=1) - 2**22) <= w.shape[1])  # rounding of each tap by <= 0.5


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        resize_uint8(torch.zeros(3, 4, 4), (2, 2), "lanczos")
    with pytest.raises(ValueError, match="unknown filter"):
        resize_uint8(torch.zeros(3, 4, 4, dtype=torch.uint8), (2, 2), "nearest")
