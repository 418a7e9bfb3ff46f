"""Real spherical harmonics up to degree 3 in the 3DGS convention (evaluation and rotation).

Coefficients are ``[..., K, 3]`` with K = (deg+1)^2 (coefficient-major, RGB last; k = 0 is DC). The colour of a
Gaussian seen along the unit direction d is ``max(sum_k Y_k(d) sh[k] + 0.5, 0)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

C0 = 0.28209479177387814
C1 = 0.4886025119029199
C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
      1.445305721320277, -0.5900435899266435)


def sh_basis(x: Any, y: Any, z: Any, degree: int = 3) -> list[Any]:
    """The (degree+1)^2 basis functions at unit directions (x, y, z) (numpy arrays or torch tensors alike)."""
    out = [C0 + 0 * x]
    if degree >= 1:
        out += [-C1 * y, C1 * z, -C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [C2[0] * x * y, C2[1] * y * z, C2[2] * (2 * zz - xx - yy), C2[3] * x * z, C2[4] * (xx - yy)]
    if degree >= 3:
        out += [C3[0] * y * (3 * xx - yy), C3[1] * x * y * z, C3[2] * y * (4 * zz - xx - yy),
                C3[3] * z * (2 * zz - 3 * xx - 3 * yy), C3[4] * x * (4 * zz - xx - yy), C3[5] * z * (xx - yy),
                C3[6] * x * (xx - 3 * yy)]
    return out


def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    r = np.sqrt(1 - z * z)
    phi = np.pi * (3 - np.sqrt(5)) * i
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=-1)


def sh_rotation_matrix(rot: np.ndarray, degree: int = 3) -> np.ndarray:
    """``M [K, K]`` (block diagonal per band) with ``M @ c`` the coefficients of the function rotated by ``rot``.

    The rotated function is ``g(d) = f(rot^T d)``; each band is fitted exactly by least squares on fixed
    directions (a band is closed under rotation, so the fit is exact up to rounding).
    """
    dirs = _fibonacci_sphere(64)
    basis = np.stack(sh_basis(*dirs.T, degree=degree), axis=-1)  # [64, K]
    src = dirs @ np.asarray(rot, dtype=np.float64)  # rows: rot^T d
    basis_rot = np.stack(sh_basis(*src.T, degree=degree), axis=-1)
    k = (degree + 1) ** 2
    m = np.zeros((k, k))
    for band in range(degree + 1):
        sl = slice(band * band, (band + 1) ** 2)
        # basis[:, sl] @ m_b = basis_rot[:, sl]: coefficients c' with Y(d) c' = Y(rot^T d) c
        m[sl, sl] = np.linalg.lstsq(basis[:, sl], basis_rot[:, sl], rcond=None)[0]
    return m


def rotate_sh(sh: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Rotate SH coefficients ``[..., K, 3]`` by the 3x3 rotation ``rot`` (a frame change ``X_w = rot X``)."""
    degree = int(round(np.sqrt(sh.shape[-2]))) - 1
    m = sh_rotation_matrix(rot, degree)
    return np.einsum("ij,...jc->...ic", m, sh)


def eval_sh(sh: Any, dirs: Any) -> Any:
    """Colour ``sum_k Y_k(d) sh[..., k, :]`` at unit directions ``dirs [..., 3]`` (torch), without the +0.5."""
    import torch

    degree = int(round(sh.shape[-2] ** 0.5)) - 1
    basis = torch.stack(sh_basis(dirs[..., 0], dirs[..., 1], dirs[..., 2], degree=degree), dim=-1)
    return (basis.unsqueeze(-1) * sh).sum(dim=-2)
