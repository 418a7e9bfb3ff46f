"""tttLRM architecture options, read from a config in the official YAML layout (torch-free).

Only the fields the network reads are parsed; a missing required
field raises ``ValueError`` naming it. :meth:`TttLrmArch.released` gives the released 24-block, d = 768 model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

#: update schedules of the fast weights: one chunk of all tokens, or sequential chunks of 4 views
TTT_SCANS = ("full", "ar")

_MISSING = object()


@dataclass(frozen=True)
class TttLrmArch:
    """Sizes and constants of one tttLRM network.

    Attributes:
        d: residual width.
        n_layer: number of blocks (attention, fast-weight GLU, MLP).
        patch_size: p; images must be multiples of it in both directions.
        in_channels: per-pixel input channels (12: ray origin, direction, moment, 2*rgb-1).
        attn_head_dim: attention head size (d / attn_head_dim heads).
        ttt_head_dim: fast-weight head size; must equal d (one head).
        ttt_inter_multi: fast-weight hidden size h = d * ttt_inter_multi.
        muon_update_steps: Newton-Schulz steps per update (0 = only the Frobenius normalisation of the gradient).
        mlp_inter_multi: MLP hidden size = d * mlp_inter_multi.
        ttt_scan: default update schedule, 'full' or 'ar'.
        miniupdate_views: views per update chunk in 'ar' mode.
        max_dist: distance scale of the position head (normalised units).
        sh_degree: degree of the SH colour (16 coefficients for 3).
        max_scaling: clamp of the natural-log scales (normalised units).
        image_size, image_size_x: trained input height and width (pixels).
        usage_threshold: opacity (after the sigmoid) at or below which the official PLY export drops a Gaussian.
    """

    d: int
    n_layer: int
    patch_size: int
    in_channels: int
    attn_head_dim: int
    ttt_head_dim: int
    ttt_inter_multi: int = 1
    muon_update_steps: int = 0
    mlp_inter_multi: int = 4
    ttt_scan: str = "full"
    miniupdate_views: int = 4
    max_dist: float = 500.0
    sh_degree: int = 3
    max_scaling: float = -1.2
    image_size: int = 536
    image_size_x: int = 960
    usage_threshold: float = 0.001

    @property
    def ttt_hidden(self) -> int:
        return self.d * self.ttt_inter_multi

    @property
    def mlp_hidden(self) -> int:
        return self.d * self.mlp_inter_multi

    @property
    def n_sh(self) -> int:
        return (self.sh_degree + 1) ** 2

    @property
    def channels(self) -> int:
        """Values per Gaussian: 3 distance, 3*n_sh colour, 3 scale, 4 rotation, 1 opacity."""
        return 3 + 3 * self.n_sh + 3 + 4 + 1

    def validate(self) -> None:
        if self.ttt_scan not in TTT_SCANS:
            raise ValueError(f"model.ttt_scan: expected one of {', '.join(TTT_SCANS)}, got {self.ttt_scan!r}")
        if self.ttt_head_dim != self.d:
            raise ValueError(f"model.block_config[1].params.head_dim: must equal model.transformer.d = {self.d} "
                             f"(one fast-weight head), got {self.ttt_head_dim}")
        if self.d % self.attn_head_dim:
            raise ValueError(f"model.block_config[0].params.head_dim: must divide d = {self.d}, "
                             f"got {self.attn_head_dim}")
        if self.in_channels != 12:
            raise ValueError(f"model.in_channels: the ray input has 12 channels, got {self.in_channels}")
        if self.miniupdate_views < 1:
            raise ValueError(f"model.miniupdate_views: must be >= 1, got {self.miniupdate_views}")

    @classmethod
    def released(cls, ttt_scan: str = "full") -> TttLrmArch:
        """The architecture of the released ``dl3dv_full.pt`` / ``dl3dv_ar.pt`` checkpoints."""
        return cls(d=768, n_layer=24, patch_size=8, in_channels=12, attn_head_dim=64, ttt_head_dim=768,
                   ttt_inter_multi=4, muon_update_steps=5, mlp_inter_multi=4, ttt_scan=ttt_scan)

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> TttLrmArch:
        """Parse a config dict in the official nesting (top-level ``model:`` section)."""
        model = cfg.get("model") if isinstance(cfg, Mapping) else None
        if not isinstance(model, Mapping):
            raise ValueError("config: expected a top-level 'model' section")

        def get(path: str, default: Any = _MISSING) -> Any:
            node: Any = model
            for part in path.split("."):
                if part.startswith("block_config["):
                    idx = int(part[len("block_config["):-1])
                    blocks = node.get("block_config") if isinstance(node, Mapping) else None
                    node = blocks[idx] if isinstance(blocks, list) and len(blocks) > idx else _MISSING
                else:
                    node = node.get(part, _MISSING) if isinstance(node, Mapping) else _MISSING
                if node is _MISSING:
                    break
            if node is _MISSING or node is None:
                if default is _MISSING:
                    raise ValueError(f"config: missing required field model.{path}")
                return default
            return node

        gauss = "gaussians."
        arch = cls(
            d=int(get("transformer.d")),
            n_layer=int(get("transformer.n_layer")),
            patch_size=int(get("patch_size")),
            in_channels=int(get("in_channels")),
            attn_head_dim=int(get("block_config[0].params.head_dim")),
            ttt_head_dim=int(get("block_config[1].params.head_dim")),
            ttt_inter_multi=int(get("block_config[1].params.inter_multi", 1)),
            muon_update_steps=int(get("block_config[1].params.muon_update_steps", 0)),
            mlp_inter_multi=int(get("block_config[2].params.inter_multi", 4)),
            ttt_scan=str(get("ttt_scan")),
            miniupdate_views=int(get("miniupdate_views", 4)),
            max_dist=float(get("max_dist", 500.0)),
            sh_degree=int(get(gauss + "sh_degree")),
            max_scaling=float(get(gauss + "max_scaling", -1.2)),
            image_size=int(get("image_size")),
            image_size_x=int(get("image_size_x")),
            usage_threshold=float(get(gauss + "usage_threshold", 0.001)),
        )
        arch.validate()
        return arch


def read_config(config: str | Path | Mapping[str, Any]) -> TttLrmArch:
    """An architecture from a YAML/JSON file in the official layout or from the equivalent dict."""
    if isinstance(config, Mapping):
        return TttLrmArch.from_dict(config)
    path = Path(config)
    if not path.is_file():
        raise FileNotFoundError(f"tttLRM config not found: {path}")
    text = path.read_text()
    data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    try:
        return TttLrmArch.from_dict(data or {})
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
