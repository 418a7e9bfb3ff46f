"""The SDPA + shortcut statistics equal the explicit-attention reference; the update rules differ.

Reference = what the official TTT3R / TTSA3R code does: materialise the state decoder's pre-softmax
cross-attention logits ``A [layers, heads, S, 1+N]``, then
TTT3R: ``mean over (keys, layers x heads)``; TTSA3R: ``[..., 1:]`` then ``mean over layers x heads``.
"""

from __future__ import annotations

import pytest
import torch

import frontends.cut3r.model.blocks as blocks_module
from frontends.cut3r.update_rules import UPDATE_RULES, UpdateInputs, create_update_rule
from kernels.attention import StatsRequest, attention_with_stats
from slam.errors import RegistryError
from tests.cut3r.tiny_models import random_frames, tiny_net
from tests.kernels.reference import explicit_attention, stats_from_logits
from tests.cut3r.threads import single_torch_thread  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("single_torch_thread")

BOTH = StatsRequest(mean_logit=True, head_logit_sum=True, skip_keys=1)


def test_single_call_matches_explicit_attention():
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 16, n, 4) * 3 for n in (24, 7, 7))
    out, stats = attention_with_stats(q, k, v, 4**-0.5, BOTH)
    ref_out, logits = explicit_attention(q, k, v, 4**-0.5)
    ref = stats_from_logits(logits, skip_keys=1)
    assert torch.allclose(out, ref_out, atol=1e-6)
    assert stats.mean_logit.shape == (1, 24) and stats.head_logit_sum.shape == (1, 24, 6)
    for ours, theirs in ((stats.mean_logit, ref.mean_logit), (stats.head_logit_sum, ref.head_logit_sum)):
        assert (ours - theirs).abs().max() <= 1e-6 * theirs.abs().max()
    # not requested -> not computed
    _, none = attention_with_stats(q, k, v, 0.5)
    assert none.mean_logit is None and none.head_logit_sum is None


def _decode_with_recorded_logits(net, frame):
    """Run the decoders once, recording the explicit logits of every state-decoder cross-attention."""
    recorded = []
    original = blocks_module.attention_with_stats

    def recording(q, k, v, scale, request=StatsRequest()):
        if request.any:  # only the state decoder asks for statistics
            recorded.append(explicit_attention(q, k, v, scale)[1])
        return original(q, k, v, scale, request)

    blocks_module.attention_with_stats = recording
    try:
        with torch.inference_mode():
            feat, pos = net.encode(frame)
            state, state_pos = net.initial_state()
            pose_in = net.pose_retriever.inquire(feat.mean(1, keepdim=True), net.initial_memory())
            decoded = net.decode(state, state_pos, feat, pos, pose_in, BOTH)
    finally:
        blocks_module.attention_with_stats = original
    return decoded, recorded


def test_decoder_statistics_equal_official_reduction():
    net = tiny_net(seed=1)
    decoded, recorded = _decode_with_recorded_logits(net, random_frames(1)[:1])
    depth, heads = net.cfg.dec_depth, net.cfg.state_dec_num_heads
    assert len(recorded) == depth
    logits = torch.cat(recorded, dim=0)  # [L, H, S, 1+N] (batch 1)
    n_keys = logits.shape[-1]
    assert logits.shape == (depth, heads, net.cfg.state_size, 1 + 6) and n_keys == 7
    per_token = logits.permute(2, 3, 0, 1).reshape(1, net.cfg.state_size, n_keys, depth * heads)  # 1 s n (l h)
    ttt3r_ref = per_token.mean(dim=(-1, -2))  # [1,S]
    ttsa3r_ref = per_token[:, :, 1:, :].mean(dim=-1)  # [1,S,N]
    assert torch.allclose(decoded.mean_logit, ttt3r_ref, atol=1e-6), (decoded.mean_logit - ttt3r_ref).abs().max()
    assert torch.allclose(decoded.logit_mean, ttsa3r_ref, atol=1e-6), (decoded.logit_mean - ttsa3r_ref).abs().max()
    # the statistics are not trivial (otherwise the comparison would prove nothing)
    assert ttt3r_ref.std() > 1e-2 and ttsa3r_ref.abs().max() > 1e-1
    # including the pose column would change the TTSA3R matrix: the exclusion is real
    assert not torch.allclose(per_token[:, :, :-1, :].mean(-1), ttsa3r_ref, atol=1e-4)


def test_ttsa3r_rule_matches_official_formula():
    torch.manual_seed(3)
    s, d, n, c = 24, 64, 6, 64
    prev_new, new, prev_state = (torch.randn(1, s, d) for _ in range(3))
    prev_feat, feat = torch.randn(1, n, c), torch.randn(1, n, c)
    logit_mean = torch.randn(1, s, n)
    rule = create_update_rule("ttsa3r")
    w0 = rule.weights(UpdateInputs(prev_state, prev_new, prev_feat, first_of_segment=True))
    assert torch.equal(w0, torch.ones(1, s))
    state, w = rule(UpdateInputs(prev_state, new, feat, logit_mean=logit_mean))
    change = (new - prev_new).norm(dim=-1).squeeze(0)
    temporal = torch.sigmoid(change / change.mean() - 1.5)
    dis = 1.0 - ((feat / feat.norm(dim=-1, keepdim=True)) * (prev_feat / prev_feat.norm(dim=-1, keepdim=True))).sum(-1)
    spatial = torch.sigmoid((logit_mean.abs() * dis.unsqueeze(1)).max(dim=-1)[0].squeeze(0))
    expected = (temporal * spatial)[None]
    assert torch.allclose(w, expected, atol=1e-7)
    assert torch.allclose(state, new * expected[..., None] + prev_state * (1 - expected[..., None]), atol=1e-6)


def test_rules_are_registered_and_distinguishable():
    assert {"cut3r", "ttt3r", "ttsa3r"} <= set(UPDATE_RULES.names())
    with pytest.raises(RegistryError):
        create_update_rule("nope")
    net = tiny_net(seed=2)
    frames = random_frames(4, seed=5)
    weights, states = {}, {}
    for rule in ("cut3r", "ttt3r", "ttsa3r"):
        session = net.session(update=rule)
        ws = [session.step(frames[i: i + 1])["update_weight"] for i in range(4)]
        weights[rule], states[rule] = torch.cat(ws), session.state
        assert torch.equal(ws[0], torch.ones_like(ws[0])), f"{rule}: first view must be a full update"
    assert torch.equal(weights["cut3r"], torch.ones_like(weights["cut3r"]))
    for rule in ("ttt3r", "ttsa3r"):
        later = weights[rule][1:]
        assert later.min() > 0 and later.max() < 1 and later.std() > 1e-3, rule
    assert (weights["ttt3r"][1:] - weights["ttsa3r"][1:]).abs().max() > 0.05
    assert (states["cut3r"] - states["ttt3r"]).abs().max() > 1e-2
    assert (states["ttt3r"] - states["ttsa3r"]).abs().max() > 1e-2
