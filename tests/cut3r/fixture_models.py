"""Test helpers: build the tiny fixture models and read the fixture runs.

Fixture folders: the full golden set (``$TTSA_SHARED/fixtures/cut3r``, official ``.pth`` checkpoints) or
the compact copy shipped in ``tests/cut3r/data`` (xz-compressed safetensors, uint8 inputs; see
``compact_fixtures.py``). The checkpoint is read with ``weights_only=True`` (only ``argparse.Namespace``
is allow-listed) or from safetensors, and the model string is parsed with ``ast`` (no eval). ``frontends/cut3r/checkpoint.py`` is the product's loader;
this helper only keeps the parity tests independent of it.
"""

from __future__ import annotations

import argparse
import ast
import json
import lzma
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from frontends.cut3r.config import Cut3rNetConfig
from frontends.cut3r.model import Cut3rNet


def _literal(node: ast.AST):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_literal(e) for e in node.elts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_literal(node.operand)
    if isinstance(node, ast.Name) and node.id == "inf":
        return math.inf
    raise ValueError(f"unsupported literal in model string: {ast.dump(node)}")


def config_from_model_string(model: str) -> Cut3rNetConfig:
    """``ARCroco3DStereo(ARCroco3DStereoConfig(k=v, ...))`` -> :class:`Cut3rNetConfig` (no eval)."""
    call = ast.parse(model.strip(), mode="eval").body
    assert isinstance(call, ast.Call) and call.func.id == "ARCroco3DStereo"
    inner = call.args[0]
    assert isinstance(inner, ast.Call) and inner.func.id == "ARCroco3DStereoConfig"
    kwargs = {kw.arg: _literal(kw.value) for kw in inner.keywords}
    if kwargs.get("patch_embed_cls") == "ManyAR_PatchEmbed":
        kwargs["patch_embed_cls"] = "PatchEmbedDust3R"
    kwargs["landscape_only"] = False
    return Cut3rNetConfig(**kwargs)


def read_checkpoint(path: Path) -> tuple[str, dict]:
    with torch.serialization.safe_globals([argparse.Namespace]):
        ck = torch.load(path, map_location="cpu", weights_only=True)
    return ck["args"].model, ck["model"]


def read_compressed_safetensors(path: Path) -> tuple[str, dict]:
    """``model.safetensors.xz`` -> (model string from metadata ``config``, state dict)."""
    from safetensors.torch import load

    raw = lzma.decompress(Path(path).read_bytes())
    # safetensors layout: 8-byte little-endian header length, then the JSON header (holds __metadata__)
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    return header["__metadata__"]["config"], load(raw)


@lru_cache(maxsize=4)
def fixture_model(fixtures_dir: Path, head: str) -> Cut3rNet:
    """The fixture model of ``head`` ('dpt' or 'linear'), loaded strictly, eval mode, CPU: ``model_{head}.pth``
    when the folder has it, else ``model_{head}.safetensors.xz`` (the compact shipped copy)."""
    pth = Path(fixtures_dir) / f"model_{head}.pth"
    if pth.is_file():
        model_string, state_dict = read_checkpoint(pth)
    else:
        model_string, state_dict = read_compressed_safetensors(Path(fixtures_dir) / f"model_{head}.safetensors.xz")
    net = Cut3rNet(config_from_model_string(model_string))
    net.load_state_dict(state_dict, strict=True)
    return net.eval()


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz``; an inputs file holding only ``img_uint8`` gets ``img`` recomputed
    as ``(u8/255 - 0.5)/0.5`` in float32 (bit-identical to the stored float input, see compact_fixtures)."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    if "img" not in arrays and "img_uint8" in arrays:
        u8 = torch.from_numpy(np.ascontiguousarray(arrays["img_uint8"])).permute(0, 3, 1, 2)
        arrays["img"] = u8.float().div(255).sub(0.5).div(0.5).numpy()
    return arrays
