"""3D Gaussian Splatting PLY files (the layout of the original 3DGS code), written atomically, and a reader.

Binary little-endian, one ``vertex`` element per Gaussian, all properties float32, in this order:
``x y z nx ny nz f_dc_0..2 f_rest_0..(3(K-1)-1) opacity scale_0..2 rot_0..3`` with normals 0, ``f_dc`` the SH DC
term, ``f_rest_{ch*(K-1) + (k-1)} = sh[k, ch]`` (channel-major), ``opacity`` the logit, ``scale_*`` natural-log
scales and ``rot_*`` the quaternion (w, x, y, z) as stored. (The official tttLRM writer stores the normals as
uchar; float keeps the exact original 3DGS layout, which splatting viewers read either way.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from slam.atomic import write_bytes_atomic


def _fields(n_sh: int) -> list[str]:
    return (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
            + [f"f_rest_{i}" for i in range(3 * (n_sh - 1))]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def write_gaussian_ply(path: str | Path, means: np.ndarray, sh: np.ndarray, opacity_logits: np.ndarray,
                       log_scales: np.ndarray, quats: np.ndarray) -> Path:
    """Write N Gaussians (``means [N,3]``, ``sh [N,K,3]``, ``opacity_logits [N]`` or ``[N,1]``,
    ``log_scales [N,3]``, ``quats [N,4]`` w x y z) through a temporary file and an atomic rename."""
    path = Path(path)
    n, n_sh = sh.shape[0], sh.shape[1]
    rest = np.transpose(sh[:, 1:, :], (0, 2, 1)).reshape(n, 3 * (n_sh - 1))  # channel-major
    cols = [means.reshape(n, 3), np.zeros((n, 3)), sh[:, 0, :], rest, opacity_logits.reshape(n, 1),
            log_scales.reshape(n, 3), quats.reshape(n, 4)]
    data = np.concatenate([np.asarray(c, dtype=np.float32) for c in cols], axis=1)
    names = _fields(n_sh)
    assert data.shape[1] == len(names)
    header = "\n".join(["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
                       + [f"property float {name}" for name in names] + ["end_header"]) + "\n"
    write_bytes_atomic(path, header.encode("ascii") + np.ascontiguousarray(data, dtype="<f4").tobytes())
    return path


_PLY_TYPES = {"float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8", "uchar": "u1", "uint8": "u1",
              "char": "i1", "int8": "i1", "ushort": "<u2", "uint16": "<u2", "short": "<i2", "int16": "<i2",
              "uint": "<u4", "uint32": "<u4", "int": "<i4", "int32": "<i4"}


def read_gaussian_ply(path: str | Path) -> dict[str, np.ndarray]:
    """Read a binary little-endian 3DGS PLY (any property types) into ``means, sh, opacity_logits, log_scales,
    quats`` (float32, shapes as :func:`write_gaussian_ply` takes them); raises ``ValueError`` on other layouts."""
    raw = Path(path).read_bytes()
    end = raw.find(b"end_header\n")
    if not raw.startswith(b"ply\n") or end < 0:
        raise ValueError(f"{path}: not a PLY file")
    lines = raw[:end].decode("ascii").splitlines()
    if "format binary_little_endian 1.0" not in lines:
        raise ValueError(f"{path}: only binary little-endian PLY is supported")
    count, props, in_vertex = 0, [], False
    for line in lines:
        parts = line.split()
        if parts[:1] == ["element"]:
            in_vertex = parts[1] == "vertex"
            if in_vertex:
                count = int(parts[2])
        elif parts[:1] == ["property"] and in_vertex:
            props.append((parts[2], _PLY_TYPES[parts[1]]))
    table = np.frombuffer(raw, dtype=np.dtype(props), count=count, offset=end + len(b"end_header\n"))
    names = [p[0] for p in props]
    n_rest = sum(name.startswith("f_rest_") for name in names)
    n_sh = n_rest // 3 + 1

    def cols(keys: list[str]) -> np.ndarray:
        return np.stack([table[k].astype(np.float32) for k in keys], axis=-1)

    sh = np.zeros((count, n_sh, 3), dtype=np.float32)
    sh[:, 0, :] = cols(["f_dc_0", "f_dc_1", "f_dc_2"])
    if n_rest:
        sh[:, 1:, :] = cols([f"f_rest_{i}" for i in range(n_rest)]).reshape(count, 3, n_sh - 1).transpose(0, 2, 1)
    return {"means": cols(["x", "y", "z"]), "sh": sh, "opacity_logits": table["opacity"].astype(np.float32),
            "log_scales": cols(["scale_0", "scale_1", "scale_2"]), "quats": cols(["rot_0", "rot_1", "rot_2", "rot_3"])}
