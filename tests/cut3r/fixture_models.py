"""Test helpers: build the tiny fixture models from ``shared/fixtures/cut3r`` and read the fixture runs.

The checkpoint is read with ``weights_only=True`` (only ``argparse.Namespace`` is allow-listed) and the
model string is parsed with ``ast`` (no eval). ``frontends/cut3r/checkpoint.py`` is the product's loader;
this helper only keeps the parity tests independent of it.
"""

from __future__ import annotations

import argparse
import ast
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


@lru_cache(maxsize=4)
def fixture_model(fixtures_dir: Path, head: str) -> Cut3rNet:
    """The fixture model ``model_{head}.pth`` (head = 'dpt' or 'linear'), loaded strictly, eval mode, CPU."""
    model_string, state_dict = read_checkpoint(Path(fixtures_dir) / f"model_{head}.pth")
    net = Cut3rNet(config_from_model_string(model_string))
    net.load_state_dict(state_dict, strict=True)
    return net.eval()


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}
