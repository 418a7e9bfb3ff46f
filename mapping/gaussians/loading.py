"""Safe loading of tttLRM checkpoints (official ``.pt`` or converted ``.safetensors``) and the conversion.

The official file is a torch pickle ``{'model': state_dict, ...}``. It is read with ``weights_only=True`` (no
pickled code runs). Keys of the training-loss networks are ignored by name; any other key outside the network is
reported (log warning and :attr:`LoadReport.unexpected`); a missing or mis-shaped network key raises.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from mapping.gaussians.arch import TttLrmArch, read_config
from mapping.gaussians.network import TttLrm
from slam.errors import CheckpointError
from slam.atomic import atomic_path

log = logging.getLogger(__name__)

#: prefixes of the training-loss networks stored next to the network (VGG-19 perceptual, Depth-Anything-V2)
LOSS_PREFIXES = ("perceptual_loss_module.", "depth_anything.")
#: safetensors metadata key holding the architecture (official YAML layout, as JSON)
CONFIG_METADATA_KEY = "tttlrm_config"


@dataclass
class LoadReport:
    """What :func:`load_state_dict_file` found besides the network keys."""

    ignored: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def build_model(arch: TttLrmArch, device: str | torch.device = "meta", ns_dtype: str = "bf16") -> TttLrm:
    """An uninitialised network; on 'meta' it allocates nothing (parameter counting, strict loading)."""
    with torch.device(device):
        return TttLrm(arch, ns_dtype=ns_dtype)


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors of a checkpoint file and its metadata (safetensors only), without executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("tttLRM checkpoint not found", path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CheckpointError(f"not a readable .safetensors file ({first})", path) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors have many types
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointError(f"not a loadable weights-only torch checkpoint ({type(exc).__name__}: {first})",
                              path) from None
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError("expected a dict with a 'model' state dict of tensors", path)
    return dict(obj), {}


def select_network_keys(state: Mapping[str, torch.Tensor], model: TttLrm,
                        source: str = "checkpoint") -> tuple[dict[str, torch.Tensor], LoadReport]:
    """The network's tensors from ``state``; raises :class:`CheckpointError` on a missing or mis-shaped key."""
    expected = model.state_dict()
    report = LoadReport()
    chosen: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key in expected:
            chosen[key] = tensor
        elif key.startswith(LOSS_PREFIXES):
            report.ignored.append(key)
        else:
            report.unexpected.append(key)
    missing = [k for k in expected if k not in chosen]
    if missing:
        more = f" (+{len(missing) - 3} more)" if len(missing) > 3 else ""
        raise CheckpointError(f"{len(missing)} network keys missing, e.g. {', '.join(missing[:3])}{more}"
                              " (does the config match the checkpoint?)", source)
    for key, tensor in chosen.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(f"{key} has shape {list(tensor.shape)}, the config expects "
                                  f"{list(expected[key].shape)}", source)
    if report.unexpected:
        log.warning("%s: %d keys outside the network were not loaded: %s", source, len(report.unexpected),
                    ", ".join(sorted(report.unexpected)[:10]))
    return chosen, report


def resolve_arch(path: Path, config: str | Path | Mapping[str, Any] | None, metadata: Mapping[str, str]) -> TttLrmArch:
    """The architecture: ``config`` if given, else ``<path>.yaml`` beside the file, else the safetensors metadata,
    else the released architecture (AR schedule when the file name contains '_ar', else full)."""
    if config is not None:
        return read_config(config)
    for suffix in (".yaml", ".yml", ".json"):
        sibling = path.with_suffix(suffix)
        if sibling.is_file():
            return read_config(sibling)
    if CONFIG_METADATA_KEY in metadata:
        return read_config(json.loads(metadata[CONFIG_METADATA_KEY]))
    return TttLrmArch.released("ar" if "_ar" in path.stem else "full")


def load_model(path: str | Path, device: str | torch.device = "cpu", ns_dtype: str = "bf16",
               config: str | Path | Mapping[str, Any] | None = None, autocast: bool = False) -> TttLrm:
    """Load a tttLRM checkpoint (official ``.pt`` or ``.safetensors``) into a ready-to-run network.

    Args:
        path: checkpoint file.
        device: where the network runs.
        ns_dtype: 'bf16' (official) or 'fp32' Newton-Schulz step.
        config: YAML/JSON file in the official layout or the equivalent dict; None = see :func:`resolve_arch`.
        autocast: on CUDA, bf16 autocast of the dense layers as the official inference (default float32).

    Raises:
        CheckpointError: file missing or unreadable, network keys missing or of the wrong shape.
    """
    path = Path(path).expanduser()
    state, metadata = read_checkpoint(path)
    arch = resolve_arch(path, config, metadata)
    model = build_model(arch, "meta", ns_dtype)
    chosen, _ = select_network_keys(state, model, source=str(path))
    chosen = {k: v.to(torch.float32) for k, v in chosen.items()}
    model.load_state_dict(chosen, strict=True, assign=True)
    model.autocast = autocast
    model.requires_grad_(False)
    return model.to(device).eval()


def convert_to_safetensors(src: str | Path, dst: str | Path,
                           config: str | Path | Mapping[str, Any] | None = None) -> Path:
    """Write the network tensors of ``src`` (loss keys dropped) and its architecture to a ``.safetensors`` file.

    The architecture is stored in the metadata (official YAML layout as JSON), so :func:`load_model` needs no
    config beside the converted file. Tensors keep their stored dtype.
    """
    from safetensors.torch import save_file

    src, dst = Path(src), Path(dst)
    state, metadata = read_checkpoint(src)
    arch = resolve_arch(src, config, metadata)
    chosen, _ = select_network_keys(state, build_model(arch), source=str(src))
    meta = {CONFIG_METADATA_KEY: json.dumps(arch_to_config(arch))}
    with atomic_path(dst) as tmp:
        save_file({k: v.contiguous() for k, v in chosen.items()}, str(tmp), metadata=meta)
    return dst


def arch_to_config(arch: TttLrmArch) -> dict[str, Any]:
    """The architecture as a config dict in the official nesting (inverse of :meth:`TttLrmArch.from_dict`)."""
    return {"model": {
        "image_size": arch.image_size, "image_size_x": arch.image_size_x, "patch_size": arch.patch_size,
        "in_channels": arch.in_channels, "transformer": {"d": arch.d, "n_layer": arch.n_layer},
        "ttt_scan": arch.ttt_scan, "miniupdate_views": arch.miniupdate_views, "max_dist": arch.max_dist,
        "block_config": [
            {"params": {"head_dim": arch.attn_head_dim}},
            {"params": {"head_dim": arch.ttt_head_dim, "inter_multi": arch.ttt_inter_multi,
                        "muon_update_steps": arch.muon_update_steps, "use_o_norm": True}},
            {"params": {"inter_multi": arch.mlp_inter_multi}}],
        "gaussians": {"sh_degree": arch.sh_degree, "max_scaling": arch.max_scaling,
                      "usage_threshold": arch.usage_threshold}}}
