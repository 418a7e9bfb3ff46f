"""Architecture configuration of the STream3R network.

The official constructor takes ``img_size``, ``patch_size``, ``embed_dim`` and ``freeze``; every other size is
a default inside the sub-module constructors. The fixture models carry overrides of those defaults as extra
keys of ``config.json``; a key that is absent keeps the official value, so the release's ``config.json``
(four keys, or no file at all) gives the full-size architecture.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from slam.errors import CheckpointError


@dataclass(frozen=True)
class Stream3rNetConfig:
    """Hyper-parameters; defaults are the official (released) values.

    Attributes:
        img_size: DINOv2 training size; the position-embedding grid is ``img_size/patch_size`` squared.
        patch_size: patch size of the DINOv2 patch conv and of the aggregator grid (the DPT heads assume 14).
        embed_dim: C, width of DINOv2 and of the aggregator (heads read 2C).
        freeze: training only, kept so that a config round-trips.
        patch_embed_depth, patch_embed_num_heads: DINOv2 blocks and heads.
        aggregator_depth, aggregator_num_heads: frame blocks (= global blocks) and their heads.
        camera_trunk_depth, camera_num_heads: camera-head trunk blocks and heads.
        dpt_features: F, DPT fusion width; dpt_out_channels: per-level widths O0..O3;
        dpt_intermediate_layer_idx: aggregator layers read by the DPT heads.
    """

    img_size: int = 518
    patch_size: int = 14
    embed_dim: int = 1024
    freeze: str = "none"
    patch_embed_depth: int = 24
    patch_embed_num_heads: int = 16
    aggregator_depth: int = 24
    aggregator_num_heads: int = 16
    camera_trunk_depth: int = 4
    camera_num_heads: int = 16
    dpt_features: int = 256
    dpt_out_channels: tuple[int, ...] = (256, 512, 1024, 1024)
    dpt_intermediate_layer_idx: tuple[int, ...] = (4, 11, 17, 23)
    # constants of the official code (never in a config file)
    num_register_tokens: int = field(default=4, init=False)
    mlp_ratio: float = field(default=4.0, init=False)
    rope_base: float = field(default=100.0, init=False)
    camera_iterations: int = field(default=4, init=False)

    def __post_init__(self):
        object.__setattr__(self, "dpt_out_channels", tuple(int(c) for c in self.dpt_out_channels))
        object.__setattr__(self, "dpt_intermediate_layer_idx", tuple(int(i) for i in self.dpt_intermediate_layer_idx))
        problems = []
        if self.img_size % self.patch_size:
            problems.append(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        if self.embed_dim % self.aggregator_num_heads or (self.embed_dim // self.aggregator_num_heads) % 4:
            problems.append("embed_dim / aggregator_num_heads must be a multiple of 4 (2-D RoPE)")
        if self.embed_dim % self.patch_embed_num_heads:
            problems.append("embed_dim must be divisible by patch_embed_num_heads")
        if (2 * self.embed_dim) % self.camera_num_heads:
            problems.append("2*embed_dim must be divisible by camera_num_heads")
        if len(self.dpt_out_channels) != 4 or len(self.dpt_intermediate_layer_idx) != 4:
            problems.append("dpt_out_channels and dpt_intermediate_layer_idx need 4 entries each")
        if any(not 0 <= i < self.aggregator_depth for i in self.dpt_intermediate_layer_idx):
            problems.append(f"dpt_intermediate_layer_idx {list(self.dpt_intermediate_layer_idx)} outside "
                            f"0..{self.aggregator_depth - 1}")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def keys(cls) -> set[str]:
        """Names accepted from ``config.json``."""
        return {f.name for f in fields(cls) if f.init}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path = "config") -> "Stream3rNetConfig":
        """Build from a ``config.json`` dict; unknown keys are ignored (as the official hub mixin does)."""
        known = {k: v for k, v in data.items() if k in cls.keys()}
        try:
            return cls(**known)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"invalid STream3R config: {exc}", source) from None

    @classmethod
    def from_json(cls, path: str | Path) -> "Stream3rNetConfig":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"cannot read config ({exc})", path) from None
        if not isinstance(data, dict):
            raise CheckpointError("config.json must hold a JSON object", path)
        return cls.from_dict(data, path)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in
                ((f.name, getattr(self, f.name)) for f in fields(self) if f.init)}
