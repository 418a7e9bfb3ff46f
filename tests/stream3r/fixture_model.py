"""Rebuild the tiny public STream3R fixture model from its recipe (fixtures README, "How the fixtures were
produced", step 2), so that parity runs without ``shared/``.

Every parameter, in ``named_parameters()`` order of the official module tree (which the network here
reproduces), is drawn as ``n = float32(randn(shape, float64))`` from one generator seeded with
``init_seed`` and scaled by its kind; then the field-of-view rows of the last pose layer are post-scaled.
The test ``test_regenerated_weights_equal_public_file`` checks the result bit for bit against the file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn

DATA = Path(__file__).parent / "data"
PUBLIC_META = DATA / "public_port_42x70.json"
PUBLIC_ARRAYS = DATA / "public_port_42x70.npz"


def fixture_state_dict(net: nn.Module, init_seed: int, post_scale: dict | None = None) -> dict[str, torch.Tensor]:
    """The fixture recipe's float32 state dict for the architecture of ``net`` (its values are not used)."""
    import re

    modules = dict(net.named_modules())
    gen = torch.Generator().manual_seed(init_seed)
    out = {}
    for name, p in net.named_parameters():
        owner, _, leaf = name.rpartition(".")
        module = modules[owner]
        n = torch.randn(p.shape, dtype=torch.float64, generator=gen).float()
        if isinstance(module, nn.LayerNorm):
            value = 1 + 0.1 * n if leaf == "weight" else 0.05 * n
        elif leaf == "gamma":
            value = 0.5 + 0.1 * n
        elif isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)) and leaf == "weight":
            fan_in = (module.in_channels * p.shape[2] * p.shape[3] if isinstance(module, nn.ConvTranspose2d)
                      else p[0].numel())
            value = n * (1 / math.sqrt(fan_in))
        elif isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            value = 0.05 * n
        elif leaf == "pos_embed":
            value = 0.5 * n
        else:  # camera/register/cls tokens, mask token, empty pose tokens
            value = n
        out[name] = value
    for pattern, op in (post_scale or {}).items():
        for name, value in out.items():
            if re.search(pattern, name):
                if "mul" in op:
                    value.mul_(torch.tensor(op["mul"], dtype=torch.float32).view(-1, *([1] * (value.ndim - 1))))
                if "add" in op:
                    value.add_(torch.tensor(op["add"], dtype=torch.float32).view(-1, *([1] * (value.ndim - 1))))
    return out


def write_public_tiny_model(folder: Path) -> Path:
    """Write the public tiny model (official layout) to ``folder`` from the recipe in ``PUBLIC_META``."""
    from frontends.stream3r.checkpoint import CONFIG_NAME, WEIGHTS_NAME
    from frontends.stream3r.config import Stream3rNetConfig
    from frontends.stream3r.model.net import Stream3rNet
    from safetensors.torch import save_file

    meta = json.loads(PUBLIC_META.read_text())
    cfg = Stream3rNetConfig.from_dict(meta["config"])
    with torch.device("meta"):
        net = Stream3rNet(cfg)
    state = fixture_state_dict(net, meta["init_seed"], meta["post_scale"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_NAME).write_text(json.dumps(meta["config"], indent=2))
    save_file(state, str(folder / WEIGHTS_NAME))
    return folder
