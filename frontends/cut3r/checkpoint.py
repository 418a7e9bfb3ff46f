"""Read CUT3R-family checkpoints (official ``.pth`` or converted ``.safetensors``) and build the network.

Two on-disk formats are accepted:

* **Official ``.pth``** (``torch.save`` zip archive): ``{'model': state_dict, 'args': config, ...}`` where
  ``args.model`` is the model string. Read without executing pickled code (:mod:`.safe_pth`).
* **``.safetensors``** (written by ``tools/convert_checkpoint.py``): the state dict, with the model string
  in the metadata entry ``config``. If the metadata lacks it, the sidecar text file
  ``<name>.config.txt`` next to it (``model.safetensors`` -> ``model.config.txt``) is read instead. When
  both exist they must describe the same architecture. Aliased tensors (the DPT ``layerK_rn`` /
  ``layer_rn.{K-1}`` pairs) are stored as two equal copies.

Everything else in an official file (``optimizer``, ``epoch`` ...) is ignored. A ``module.`` prefix is
stripped only when every key carries it, as the official loader does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from frontends.cut3r.config import Cut3rNetConfig
from frontends.cut3r.model_string import format_model_string, parse_model_string
from frontends.cut3r.safe_pth import model_string_from_args, plain_config, safe_torch_load
from slam.errors import CheckpointError

if TYPE_CHECKING:  # pragma: no cover
    from frontends.cut3r.model.net import Cut3rNet

#: safetensors metadata key holding the model string.
CONFIG_METADATA_KEY = "config"
SIDECAR_SUFFIX = ".config.txt"
_SAFETENSORS_SUFFIX = ".safetensors"
_LIST_NAMES = 5  # how many names an error message lists per category


@dataclass
class Cut3rCheckpoint:
    """The parts of a checkpoint the network needs.

    Attributes:
        path: file it was read from.
        config: parsed architecture.
        model_string: the model string as stored (before the loader's rewrites).
        state_dict: parameter name -> CPU tensor (prefix-stripped, as stored: usually float32).
        format: ``'pth'`` or ``'safetensors'``.
        metadata: other scalar entries (``epoch``, safetensors metadata ...), for information only.
    """

    path: Path
    config: Cut3rNetConfig
    model_string: str
    state_dict: dict[str, torch.Tensor]
    format: str
    metadata: dict[str, Any] = field(default_factory=dict)


def sidecar_path(path: str | Path) -> Path:
    """``model.safetensors`` -> ``model.config.txt`` (same folder)."""
    path = Path(path)
    stem = path.name[: -len(_SAFETENSORS_SUFFIX)] if path.name.endswith(_SAFETENSORS_SUFFIX) else path.stem
    return path.with_name(stem + SIDECAR_SUFFIX)


def _is_safetensors(path: Path) -> bool:
    if path.suffix == _SAFETENSORS_SUFFIX:
        return True
    with open(path, "rb") as fh:
        head = fh.read(9)
    return len(head) == 9 and head[8:9] == b"{"  # 8-byte little-endian header length, then JSON


def strip_module_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Drop a ``module.`` prefix (DDP) when *every* key has it; otherwise return the keys unchanged."""
    prefix = "module."
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _coerce_config(config: Cut3rNetConfig | str | None, source: Path) -> tuple[Cut3rNetConfig, str] | None:
    if config is None:
        return None
    if isinstance(config, Cut3rNetConfig):
        return config, format_model_string(config)
    return parse_model_string(config, str(source)), config


def read_pth(path: str | Path, config: Cut3rNetConfig | str | None = None) -> Cut3rCheckpoint:
    """Read an official ``.pth`` checkpoint safely.

    Args:
        path: the ``.pth`` file.
        config: architecture override (config or model string) for files without ``args``.
    """
    path = Path(path)
    ckpt = safe_torch_load(path)
    if not isinstance(ckpt, Mapping) or "model" not in ckpt:
        raise CheckpointError("not a CUT3R checkpoint: expected a dict with a 'model' entry", path)
    override = _coerce_config(config, path)
    if override is not None:
        net_config, model_string = override
    elif "args" in ckpt:
        model_string = model_string_from_args(ckpt["args"], path)
        net_config = parse_model_string(model_string, str(path))
    else:
        raise CheckpointError("checkpoint has no 'args' entry with the model string; pass the config explicitly", path)
    state_dict = ckpt["model"]
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"checkpoint 'model' entry is a {type(state_dict).__name__}, expected a state dict", path)
    bad = [k for k, v in state_dict.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint 'model' has {len(bad)} non-tensor entries, e.g. {bad[:_LIST_NAMES]}", path)
    metadata = {k: plain_config(v) for k, v in ckpt.items()
                if k in ("epoch", "best_so_far") and isinstance(v, (int, float))}
    return Cut3rCheckpoint(path, net_config, model_string, strip_module_prefix(state_dict), "pth", metadata)


def read_safetensors(path: str | Path, config: Cut3rNetConfig | str | None = None) -> Cut3rCheckpoint:
    """Read a ``.safetensors`` state dict plus its model string (metadata ``config`` or sidecar file)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint file not found", path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            metadata = dict(fh.metadata() or {})
            state_dict = {name: fh.get_tensor(name) for name in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"corrupt or truncated safetensors file ({exc})", path) from None

    override = _coerce_config(config, path)
    side = sidecar_path(path)
    stored = metadata.get(CONFIG_METADATA_KEY)
    if override is not None:
        net_config, model_string = override
    elif stored is not None:
        model_string = stored
        net_config = parse_model_string(stored, f"{path} (metadata '{CONFIG_METADATA_KEY}')")
        if side.is_file() and parse_model_string(side.read_text(), str(side)) != net_config:
            raise CheckpointError(f"the sidecar {side.name} describes a different architecture than the "
                                  f"file's metadata '{CONFIG_METADATA_KEY}'; remove one of them", path)
    elif side.is_file():
        model_string = side.read_text()
        net_config = parse_model_string(model_string, str(side))
    else:
        raise CheckpointError(f"no model string: neither metadata '{CONFIG_METADATA_KEY}' nor a sidecar "
                              f"file {side.name} next to it", path)
    return Cut3rCheckpoint(path, net_config, model_string.strip(), strip_module_prefix(state_dict),
                           "safetensors", metadata)


def read_checkpoint(path: str | Path, config: Cut3rNetConfig | str | None = None) -> Cut3rCheckpoint:
    """Read either format (chosen by suffix, else by content)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint file not found", path)
    if _is_safetensors(path):
        return read_safetensors(path, config)
    return read_pth(path, config)


def write_safetensors(path: str | Path, state_dict: Mapping[str, torch.Tensor], model_string: str,
                      sidecar: bool = True, extra_metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``state_dict`` as safetensors with the model string in metadata ``config``.

    Tensors sharing storage (the aliased DPT keys) are written as independent equal copies. With
    ``sidecar`` the model string is also written to ``<name>.config.txt``. Returns the written path.
    """
    from safetensors.torch import save_file

    parse_model_string(model_string, str(path))  # never write a config we could not read back
    path = Path(path)
    seen: set[tuple[int, int]] = set()
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in state_dict.items():
        t = tensor.detach().cpu()
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if key in seen or not t.is_contiguous():
            t = t.contiguous().clone()
        seen.add(key)
        tensors[name] = t
    metadata = {CONFIG_METADATA_KEY: model_string.strip(), "format": "cut3r-state-dict"}
    metadata.update(extra_metadata or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    if sidecar:
        sidecar_path(path).write_text(model_string.strip() + "\n")
    return path


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:_LIST_NAMES])
    return shown + (", ..." if len(items) > _LIST_NAMES else "")


def check_state_dict(expected: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor],
                     source: str | Path) -> None:
    """Compare names and shapes of a checkpoint's state dict with the network's; raise on any mismatch.

    Raises:
        CheckpointError listing (a few names and the count of) unknown keys, missing keys and wrong shapes,
        or naming the tensors that hold NaN / infinite values.
    """
    unknown = sorted(set(state_dict) - set(expected))
    missing = sorted(set(expected) - set(state_dict))
    wrong = sorted(k for k in set(state_dict) & set(expected)
                   if tuple(state_dict[k].shape) != tuple(expected[k].shape))
    problems = []
    if unknown:
        problems.append(f"{len(unknown)} unknown key(s): {_names(unknown)}")
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_names(missing)}")
    if wrong:
        shown = [f"{k} (file {list(state_dict[k].shape)}, model {list(expected[k].shape)})" for k in wrong]
        problems.append(f"{len(wrong)} wrong shape(s): {_names(shown)}")
    if problems:
        raise CheckpointError("checkpoint does not match the network: " + "; ".join(problems), source)
    non_finite = sorted(k for k, v in state_dict.items()
                        if v.is_floating_point() and v.device.type != "meta" and not bool(torch.isfinite(v).all()))
    if non_finite:
        raise CheckpointError(f"{len(non_finite)} tensor(s) hold NaN or infinite values, e.g. {_names(non_finite)} "
                              "(a corrupt or diverged checkpoint)", source)


def _state_outside_checkpoint(net: torch.nn.Module) -> bool:
    """True if a submodule holds tensors a state dict does not cover (non-persistent buffers, plain tensor
    attributes): those would not be filled by loading the checkpoint into an uninitialised network."""
    for module in net.modules():
        if getattr(module, "_non_persistent_buffers_set", None):
            return True
        if any(isinstance(v, torch.Tensor) for v in vars(module).values()):
            return True
    return False


def build_model(checkpoint: Cut3rCheckpoint, device: str | torch.device = "cpu",
                dtype: torch.dtype = torch.float32) -> Cut3rNet:
    """Build the network for ``checkpoint.config`` and load its weights strictly (eval mode).

    The module tree is built on the ``meta`` device and then allocated uninitialised on ``device``
    (``to_empty``), so the ~800 M random numbers of the released models are never drawn; the checkpoint
    is then copied in. Copying (rather than adopting the checkpoint's tensors) gives every parameter a
    freshly allocated, aligned buffer, so results do not depend on how the file laid out its tensors
    (safetensors offsets change the last bits of some CPU kernels). If the network holds state a
    checkpoint does not cover, it is built normally instead.
    """
    from frontends.cut3r.model.net import Cut3rNet

    with torch.device("meta"):
        net = Cut3rNet(checkpoint.config)
    check_state_dict(net.state_dict(), checkpoint.state_dict, checkpoint.path)
    if _state_outside_checkpoint(net):  # pragma: no cover - only if the network gains non-checkpoint state
        net = Cut3rNet(checkpoint.config)
    else:
        net = net.to_empty(device=device)
    net.load_state_dict(checkpoint.state_dict, strict=True)
    return net.to(device=device, dtype=dtype).eval()


def load_model(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
               config: Cut3rNetConfig | str | None = None) -> Cut3rNet:
    """Read a checkpoint (official ``.pth`` or ``.safetensors``) and return the loaded network in eval mode.

    Args:
        path: checkpoint file.
        device: where the network goes.
        dtype: parameter dtype (float32 reproduces the official outputs).
        config: architecture override for files that do not store their model string.

    Raises:
        CheckpointError: missing/corrupt file, unsafe pickle, bad model string, or a state dict whose keys
            or shapes do not match the network.
    """
    checkpoint = read_checkpoint(path, config)
    net = build_model(checkpoint, device, dtype)
    del checkpoint
    return net
