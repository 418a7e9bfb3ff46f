"""The two interleaved decoder stacks (state decoder and image decoder).

Inputs: state ``S_0 [B,S,D]`` with ``state_pos [B,S,2]`` (or None); image stream
``I_0 = [pose_in, decoder_embed(feat)]`` ``[B,1+N,D]`` with positions ``[(-1,-1), pos]``.
For each layer l (both read the layer-l inputs):

    S_{l+1} = dec_blocks_state[l](S_l, I_l, state_pos, P)     # state_dec_num_heads heads
    I_{l+1} = dec_blocks[l]      (I_l, S_l, P, state_pos)     # dec_num_heads heads

Outputs: ``new_state = dec_norm_state(S_L)`` and the head inputs
``[feat, I_{L/2}[:,1:], I_{3L/4}[:,1:], dec_norm(I_L)]`` (the pose token stays at index 0 of the last).

Update-rule statistics come from the state blocks' cross-attention (queries = state tokens, keys = the
1+N image-stream tokens) and are accumulated over layers here:
``mean_logit [B,S]`` = mean over layers, heads and all 1+N keys of the pre-softmax logits (TTT3R);
``logit_mean [B,S,N]`` = mean over layers and heads of the logits of the N image keys, pose key excluded
(TTSA3R).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from frontends.cut3r.model.blocks import DecoderBlock, RopeMode
from kernels.attention import NO_STATS, StatsRequest


@dataclass
class DecoderOutput:
    """Result of one pass through both stacks (shapes for batch B, S state tokens, N image tokens)."""

    new_state: torch.Tensor  # [B,S,D] candidate state, after dec_norm_state
    head_inputs: list[torch.Tensor]  # [feat [B,N,Cenc], [B,N,D], [B,N,D], [B,1+N,D]]
    pose_token: torch.Tensor  # [B,1,D] refined pose token = dec_norm(I_L)[:, :1]
    mean_logit: torch.Tensor | None = None  # [B,S]
    logit_mean: torch.Tensor | None = None  # [B,S,N]


def build_decoder_stack(depth: int, dim: int, num_heads: int, mlp_ratio: float) -> nn.ModuleList:
    """``depth`` decoder blocks with float32 RoPE."""
    return nn.ModuleList([DecoderBlock(dim, num_heads, mlp_ratio, RopeMode.FP32) for _ in range(depth)])


def run_decoders(
    state: torch.Tensor,
    state_pos: torch.Tensor | None,
    feat: torch.Tensor,
    img_tokens: torch.Tensor,
    img_pos: torch.Tensor,
    state_blocks: nn.ModuleList,
    img_blocks: nn.ModuleList,
    state_norm: nn.LayerNorm,
    img_norm: nn.LayerNorm,
    stats: StatsRequest = NO_STATS,
) -> DecoderOutput:
    """Run both stacks.

    Args:
        state: ``[B,S,D]`` current state. feat: ``[B,N,Cenc]`` encoder output (passed through to the head).
        img_tokens: ``[B,1+N,D]`` image stream with the pose token at index 0; img_pos ``[B,1+N,2]``.
        stats: which update-rule statistics to accumulate.
    """
    depth = len(state_blocks)
    keep = {depth * 2 // 4, depth * 3 // 4}
    kept: dict[int, torch.Tensor] = {}
    mean_logit_sum = None
    logit_sum = None
    s, x = state, img_tokens
    for layer, (blk_state, blk_img) in enumerate(zip(state_blocks, img_blocks), start=1):
        s_next, layer_stats = blk_state(s, x, state_pos, img_pos, stats)
        x, _ = blk_img(x, s, img_pos, state_pos)
        s = s_next
        if layer_stats.mean_logit is not None:
            mean_logit_sum = layer_stats.mean_logit if mean_logit_sum is None else mean_logit_sum + layer_stats.mean_logit
        if layer_stats.head_logit_sum is not None:
            hs = layer_stats.head_logit_sum
            logit_sum = hs if logit_sum is None else logit_sum + hs
        if layer in keep and layer != depth:
            kept[layer] = x
    new_state = state_norm(s)
    last = img_norm(x)
    head_inputs = [feat, kept[depth * 2 // 4][:, 1:], kept[depth * 3 // 4][:, 1:], last]
    out = DecoderOutput(new_state=new_state, head_inputs=head_inputs, pose_token=last[:, 0:1])
    if mean_logit_sum is not None:
        out.mean_logit = mean_logit_sum / depth
    if logit_sum is not None:
        heads = state_blocks[0].cross_attn.num_heads
        out.logit_mean = logit_sum / (depth * heads)
    return out
