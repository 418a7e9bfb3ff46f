"""The CUT3R-family network (official ``ARCroco3DStereo``), built from a :class:`Cut3rNetConfig`.

Parameter names equal the official state dict, so ``net.load_state_dict(official_sd, strict=True)``
works for the released checkpoints (and the fixture models). Unused-for-images modules are kept on
purpose so that the strict load accounts for every key: the ray-map path (``patch_embed_ray_map``,
``enc_blocks_ray_map``, ``enc_norm_ray_map``, ``masked_ray_map_token``) and ``masked_img_token`` are
instantiated but never run for image input.

One view (:meth:`Cut3rNet.process_view`), batch B (the session uses B = 1):
``img [B,3,H,W]`` -> encoder ``feat [B,N,Cenc]`` -> pose token (learned ``pose_token`` for the first view
of a segment, else ``pose_retriever.inquire(mean(feat), mem)``) -> both decoder stacks -> candidate state
``[B,S,D]``, new pose memory ``[B,M,2D]`` and the head outputs. Committing the state (the update rule)
is the caller's job (see ``frontends/cut3r/session.py``).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from frontends.cut3r.config import Cut3rNetConfig
from frontends.cut3r.model.blocks import RopeMode, layer_norm
from frontends.cut3r.model.decoder import DecoderOutput, build_decoder_stack, run_decoders
from frontends.cut3r.model.encoder import PatchEmbed, build_encoder_blocks, run_encoder
from frontends.cut3r.model.heads import DPTPts3dPoseHead, LinearPts3dPoseHead
from frontends.cut3r.model.pose_retriever import LocalMemory
from kernels.attention import NO_STATS, StatsRequest
from slam.errors import ConfigError

RAY_MAP_HEADS = 16  # the official ray-map encoder always has 16 heads


@dataclass
class ViewResult:
    """Everything one view produces before the state is committed (tensors on the net's device)."""

    feat: torch.Tensor  # [B,N,Cenc] encoder output after enc_norm
    pos: torch.Tensor  # [B,N,2] int64 patch positions
    pose_in: torch.Tensor  # [B,1,D] pose token fed to the decoder
    decoded: DecoderOutput  # candidate state, head inputs, refined pose token, update statistics
    new_mem: torch.Tensor  # [B,M,2D] pose-retriever memory after writing this view
    outputs: dict  # head outputs (float32): pts3d_in_self_view, conf_self, rgb, camera_pose, ...


def validate_config(cfg: Cut3rNetConfig) -> None:
    """Raise :class:`ConfigError` (naming the field) for configurations this implementation does not cover."""

    def bad(field: str, problem: str) -> ConfigError:
        return ConfigError(f"model config field {field!r}: {problem}")

    if cfg.output_mode != "pts3d+pose" or not cfg.pose_head:
        raise bad("output_mode", f"only 'pts3d+pose' with pose_head=True is supported, got {cfg.output_mode!r}")
    if cfg.head_type not in ("dpt", "linear"):
        raise bad("head_type", f"must be 'dpt' or 'linear', got {cfg.head_type!r}")
    for field, lo in (("depth_mode", -math.inf), ("conf_mode", 1), ("pose_mode", -math.inf)):
        mode = tuple(getattr(cfg, field))
        if len(mode) != 3 or mode[0] != "exp" or mode[1] != lo or mode[2] != math.inf:
            raise bad(field, f"only ('exp', {lo}, inf) is supported, got {mode!r}")
    if cfg.landscape_only:
        raise bad("landscape_only", "must be False (the official loader forces False)")
    if cfg.pos_embed != "RoPE100":
        raise bad("pos_embed", f"only 'RoPE100' is supported, got {cfg.pos_embed!r}")
    if cfg.state_pe not in ("2d", "1d", "none"):
        raise bad("state_pe", f"must be '2d', '1d' or 'none', got {cfg.state_pe!r}")
    if cfg.patch_size != 16:
        raise bad("patch_size", f"only 16 is supported, got {cfg.patch_size}")
    if cfg.depth_head or cfg.pose_conf_head:
        raise bad("depth_head/pose_conf_head", "extra heads are not supported")
    if not cfg.norm_im2_in_dec:
        raise bad("norm_im2_in_dec", "must be True")
    if cfg.dec_depth < 2:
        raise bad("dec_depth", f"must be >= 2, got {cfg.dec_depth}")
    for dim_field, heads_field, heads in (
        ("enc_embed_dim", "enc_num_heads", cfg.enc_num_heads),
        ("dec_embed_dim", "dec_num_heads", cfg.dec_num_heads),
        ("dec_embed_dim", "state_dec_num_heads", cfg.state_dec_num_heads),
    ):
        dim = getattr(cfg, dim_field)
        if heads <= 0 or dim % heads or (dim // heads) % 4:
            raise bad(heads_field, f"{dim_field}={dim} / {heads} heads must give a head dim divisible by 4")


def state_positions(state_size: int, state_pe: str, batch: int, device) -> torch.Tensor | None:
    """State-token RoPE positions ``[batch,S,2]`` int64; None for ``state_pe='none'``.

    '2d': width = int(sqrt(S)), +1 if odd; token i at (i // width, i % width). '1d': (i, i).
    """
    if state_pe == "none":
        return None
    idx = torch.arange(state_size, device=device)
    if state_pe == "1d":
        pos = torch.stack([idx, idx], dim=-1)
    else:
        width = int(state_size**0.5)
        width = width + 1 if width % 2 == 1 else width
        pos = torch.stack([idx // width, idx % width], dim=-1)
    return pos[None].expand(batch, -1, -1).contiguous()


class Cut3rNet(nn.Module):
    """The network. Attribute names are the official top-level state-dict prefixes."""

    def __init__(self, cfg: Cut3rNetConfig):
        super().__init__()
        validate_config(cfg)
        self.cfg = cfg
        enc, dec, ratio = cfg.enc_embed_dim, cfg.dec_embed_dim, cfg.mlp_ratio
        # learned tokens
        self.pose_token = nn.Parameter(torch.zeros(1, 1, dec))
        self.masked_img_token = nn.Parameter(torch.zeros(1, enc))  # unused: masked views only (training)
        self.masked_ray_map_token = nn.Parameter(torch.zeros(1, enc))  # unused: ray-map input
        # image encoder
        self.patch_embed = PatchEmbed(3, enc, cfg.patch_size)
        self.enc_blocks = build_encoder_blocks(cfg.enc_depth, enc, cfg.enc_num_heads, ratio, RopeMode.FP16)
        self.enc_norm = layer_norm(enc)
        # ray-map encoder: unused for image input, kept so the official state dict loads strictly
        self.patch_embed_ray_map = PatchEmbed(6, enc, cfg.patch_size)
        self.enc_blocks_ray_map = build_encoder_blocks(cfg.ray_enc_depth, enc, RAY_MAP_HEADS, ratio, RopeMode.FP32)
        self.enc_norm_ray_map = layer_norm(enc)
        # image decoder
        self.decoder_embed = nn.Linear(enc, dec)
        self.dec_blocks = build_decoder_stack(cfg.dec_depth, dec, cfg.dec_num_heads, ratio)
        self.dec_norm = layer_norm(dec)
        # state
        self.register_tokens = nn.Embedding(cfg.state_size, enc)
        self.decoder_embed_state = nn.Linear(enc, dec)
        self.dec_blocks_state = build_decoder_stack(cfg.dec_depth, dec, cfg.state_dec_num_heads, ratio)
        self.dec_norm_state = layer_norm(dec)
        # pose memory
        self.pose_retriever = LocalMemory(cfg.local_mem_size, enc, dec, cfg.dec_num_heads, mlp_ratio=4.0)
        # head
        if cfg.head_type == "dpt":
            self.downstream_head = DPTPts3dPoseHead(enc, dec, cfg.dec_num_heads, rgb=cfg.rgb_head,
                                                    patch_size=cfg.patch_size)
        else:
            self.downstream_head = LinearPts3dPoseHead(dec, cfg.dec_num_heads, rgb=cfg.rgb_head,
                                                       patch_size=cfg.patch_size)

    # ------------------------------------------------------------------ pieces
    @property
    def device(self) -> torch.device:
        return self.pose_token.device

    def encode(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``img [B,3,H,W]`` in [-1,1] -> ``(feat [B,N,Cenc], pos [B,N,2])``."""
        return run_encoder(img, self.patch_embed, self.enc_blocks, self.enc_norm)

    def initial_state(self, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(decoder_embed_state(register_tokens) [batch,S,D], state_pos [batch,S,2] | None)``."""
        tokens = self.register_tokens.weight[None].expand(batch, -1, -1)
        state = self.decoder_embed_state(tokens)
        return state, state_positions(self.cfg.state_size, self.cfg.state_pe, batch, self.device)

    def initial_memory(self, batch: int = 1) -> torch.Tensor:
        """The learned pose memory ``[batch,M,2D]``."""
        return self.pose_retriever.initial_memory(batch)

    def decode(self, state, state_pos, feat, pos, pose_in, stats: StatsRequest = NO_STATS) -> DecoderOutput:
        """Both decoder stacks for one view; ``pose_in [B,1,D]`` goes first at position (-1,-1)."""
        img_tokens = torch.cat([pose_in, self.decoder_embed(feat)], dim=1)
        pose_pos = -torch.ones(feat.shape[0], 1, 2, device=feat.device, dtype=pos.dtype)
        img_pos = torch.cat([pose_pos, pos], dim=1)
        return run_decoders(state, state_pos, feat, img_tokens, img_pos, self.dec_blocks_state, self.dec_blocks,
                            self.dec_norm_state, self.dec_norm, stats)

    def head(self, head_inputs: list[torch.Tensor], image_size: tuple[int, int], pos: torch.Tensor) -> dict:
        """Run the prediction head in float32 (autocast disabled)."""
        device_type = head_inputs[0].device.type
        with torch.autocast(device_type=device_type, enabled=False):
            return self.downstream_head([t.float() for t in head_inputs], image_size, pos)

    # ------------------------------------------------------------------ one view
    def process_view(
        self,
        img: torch.Tensor,
        state: torch.Tensor,
        state_pos: torch.Tensor | None,
        mem: torch.Tensor,
        first_of_segment: bool,
        stats: StatsRequest = NO_STATS,
        autocast_dtype: torch.dtype | None = None,
    ) -> ViewResult:
        """Encode, decode and predict one view without committing anything.

        Args:
            img: ``[B,3,H,W]`` float in [-1,1]. state: ``[B,S,D]``. mem: ``[B,M,2D]``.
            first_of_segment: use the learned pose token instead of querying the pose memory.
            stats: update-rule statistics to collect from the state decoder.
            autocast_dtype: run encoder/decoders under autocast with this dtype (heads stay float32).
        """
        autocast = (torch.autocast(device_type=img.device.type, dtype=autocast_dtype)
                    if autocast_dtype is not None else contextlib.nullcontext())
        with autocast:
            feat, pos = self.encode(img)
            g = feat.mean(dim=1, keepdim=True)
            if first_of_segment:
                pose_in = self.pose_token.expand(feat.shape[0], -1, -1)
            else:
                pose_in = self.pose_retriever.inquire(g, mem)
            decoded = self.decode(state, state_pos, feat, pos, pose_in, stats)
            new_mem = self.pose_retriever.update_mem(mem, g, decoded.pose_token)
        outputs = self.head(decoded.head_inputs, (img.shape[-2], img.shape[-1]), pos)
        return ViewResult(feat=feat, pos=pos, pose_in=pose_in, decoded=decoded, new_mem=new_mem, outputs=outputs)

    def session(self, update: str = "cut3r", reset_every: int | None = None,
                autocast_dtype: torch.dtype | None = None, compile_step: bool = False):
        """A :class:`~frontends.cut3r.session.StreamSession` on this net (see there)."""
        from frontends.cut3r.session import StreamSession

        return StreamSession(self, update=update, reset_every=reset_every, autocast_dtype=autocast_dtype,
                             compile_step=compile_step)
