"""Architecture configuration of the CUT3R-family network (CUT3R / TTT3R / TTSA3R share it).

Field names and defaults follow the official ``ARCroco3DStereoConfig`` plus the CroCo keyword arguments
it passes through. Fields that only matter for training
(``freeze``, ``mask_ratio``, ``img_size``) are kept so that a checkpoint's model string round-trips.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Cut3rNetConfig:
    """Hyper-parameters of the network. Defaults equal the official defaults (not the released models)."""

    output_mode: str = "pts3d"
    head_type: str = "linear"  # 'linear' (224 model) or 'dpt' (512 model)
    depth_mode: tuple = ("exp", -math.inf, math.inf)
    conf_mode: tuple = ("exp", 1, math.inf)
    pose_mode: tuple = ("exp", -math.inf, math.inf)
    freeze: str = "none"
    landscape_only: bool = False  # the official loader forces False; True is rejected
    patch_embed_cls: str = "PatchEmbedDust3R"  # 'ManyAR_PatchEmbed' is rewritten to this
    ray_enc_depth: int = 2
    state_size: int = 324
    local_mem_size: int = 256
    state_pe: str = "2d"
    state_dec_num_heads: int = 16
    depth_head: bool = False
    rgb_head: bool = False
    pose_conf_head: bool = False
    pose_head: bool = False
    img_size: tuple = (224, 224)
    patch_size: int = 16
    mask_ratio: float = 0.9
    enc_embed_dim: int = 768
    enc_depth: int = 12
    enc_num_heads: int = 12
    dec_embed_dim: int = 512
    dec_depth: int = 8
    dec_num_heads: int = 16
    mlp_ratio: float = 4.0
    norm_im2_in_dec: bool = True
    pos_embed: str = "cosine"

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


#: The released 512-DPT model (``cut3r_512_dpt_4_64.pth``), as in ``config/dpt_512_vary_4_64.yaml``.
CUT3R_512_DPT = Cut3rNetConfig(
    freeze="encoder", state_size=768, state_pe="2d", pos_embed="RoPE100", rgb_head=True, pose_head=True,
    patch_embed_cls="PatchEmbedDust3R", img_size=(512, 512), head_type="dpt", output_mode="pts3d+pose",
    enc_embed_dim=1024, enc_depth=24, enc_num_heads=16, dec_embed_dim=768, dec_depth=12, dec_num_heads=12,
    landscape_only=False,
)

#: The released 224-linear model (``cut3r_224_linear_4.pth``).
CUT3R_224_LINEAR = Cut3rNetConfig(
    freeze="encoder", state_size=768, state_pe="2d", pos_embed="RoPE100", rgb_head=True, pose_head=True,
    img_size=(224, 224), head_type="linear", output_mode="pts3d+pose",
    enc_embed_dim=1024, enc_depth=24, enc_num_heads=16, dec_embed_dim=768, dec_depth=12, dec_num_heads=12,
)
