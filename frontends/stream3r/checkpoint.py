"""Load STream3R checkpoints in the official layout (``config.json`` + ``model.safetensors``), strictly.

The release (Hugging Face ``yslan/STream3R``) is a folder with ``config.json`` (constructor arguments; the
fixture models add size overrides) and a flat float32 safetensors state
dict. ``load_model`` also accepts the ``.safetensors`` file itself (then ``config.json`` next to it is used
when present, the official defaults otherwise). Only safetensors is read (never pickle). Unlike the official
loader (``strict=False``), every unknown, missing or wrongly shaped key is an error that names it.
A leading ``net.`` or ``module.`` is stripped when every key carries it. Tensors are cast to float32.
"""

from __future__ import annotations

from pathlib import Path

import torch

from frontends.cut3r.checkpoint import check_state_dict, strip_module_prefix
from frontends.stream3r.config import Stream3rNetConfig
from slam.errors import CheckpointError

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def resolve_paths(path: str | Path) -> tuple[Path, Path | None]:
    """(weights file, config file or None) for a model folder or a ``.safetensors`` file."""
    path = Path(path)
    if path.is_dir():
        weights = path / WEIGHTS_NAME
        if not weights.is_file():
            extra = " (pickle checkpoints such as pytorch_model.bin are not read)" if (
                path / "pytorch_model.bin").exists() else ""
            raise CheckpointError(f"no {WEIGHTS_NAME} in the model folder{extra}", path)
    elif path.is_file():
        if path.suffix != ".safetensors":
            raise CheckpointError("expected a model folder or a .safetensors file (pickle is not read)", path)
        weights = path
    else:
        raise CheckpointError("model folder or file not found", path)
    config = weights.parent / CONFIG_NAME
    return weights, (config if config.is_file() else None)


def read_state_dict(weights: Path) -> dict[str, torch.Tensor]:
    """Read every tensor of a safetensors file (CPU), prefix-stripped."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="pt", device="cpu") as fh:
            state = {name: fh.get_tensor(name) for name in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"corrupt or truncated safetensors file ({exc})", weights) from None
    if state and all(k.startswith("net.") for k in state):
        state = {k[len("net."):]: v for k, v in state.items()}
    return strip_module_prefix(state)


def build_model(cfg: Stream3rNetConfig, state_dict: dict[str, torch.Tensor] | None, device="cpu",
                source: str | Path = "state dict"):
    """Build the network (on the meta device, then allocated on ``device``) and load ``state_dict`` strictly.

    ``state_dict=None`` returns uninitialised parameters (for benchmarks, fill them yourself).
    """
    from frontends.stream3r.model.net import Stream3rNet

    with torch.device("meta"):
        net = Stream3rNet(cfg)
    if state_dict is not None:
        check_state_dict(net.state_dict(), state_dict, source)
    net = net.to_empty(device=device)
    agg = net.aggregator
    from frontends.stream3r.model.aggregator import IMAGENET_MEAN, IMAGENET_STD

    agg._resnet_mean.copy_(torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1))  # non-persistent buffers
    agg._resnet_std.copy_(torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1))
    if state_dict is not None:
        net.load_state_dict({k: v.to(torch.float32) for k, v in state_dict.items()}, strict=True)
    return net.eval()


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """Read a STream3R model folder (or ``.safetensors`` file) and return the network in eval mode.

    Raises:
        CheckpointError: missing/corrupt files, bad config, or keys/shapes that do not match the network.
    """
    weights, config = resolve_paths(path)
    cfg = Stream3rNetConfig.from_json(config) if config is not None else Stream3rNetConfig()
    state = read_state_dict(weights)
    return build_model(cfg, state, device, weights)


def save_model(net, folder: str | Path) -> Path:
    """Write ``net`` in the official layout: ``config.json`` (+ size overrides) and ``model.safetensors``."""
    import json

    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_NAME).write_text(json.dumps(net.cfg.to_dict(), indent=2))
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_NAME))
    return folder
