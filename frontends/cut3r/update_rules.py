"""State-update rules of the CUT3R family, chosen by name: ``cut3r``, ``ttt3r``, ``ttsa3r``.

After each view the network proposes a candidate state ``new [1,S,D]``; a rule returns per-token weights
``G [1,S]`` and the committed state ``new * G + old * (1 - G)``. All rules give ``G = 1``
(full update) on the first view of a segment (the very first view, and the first view after a reset).

* ``cut3r``: ``G = 1`` always (plain overwrite).
* ``ttt3r``: ``G[s] = sigmoid(mean_{layers, heads, keys} A[s, key])`` with ``A`` the pre-softmax logits of
  the state decoder's cross-attention (keys = the 1+N image-stream tokens including the pose token),
  exactly the official normalisation: a plain mean over all layers x heads x keys, no temperature.
* ``ttsa3r``: ``G = temporal * spatial`` with
  ``temporal[s] = sigmoid(|new_s - prev_new_s| / mean_s|new - prev_new| - 1.5)`` (``prev_new`` = previous
  view's *candidate* state) and ``spatial[s] = sigmoid(max_j |mean_{l,h} A[s,1+j]| * (1 - cos(f_j, f'_j)))``
  (``f`` / ``f'`` = this / previous view's encoder tokens, pose key excluded, abs after the mean).
  Consecutive views must have the same token count N.

Rules may keep per-segment history (TTSA3R: previous candidate state and encoder tokens, fixed size);
:meth:`UpdateRule.reset` forgets it. Resets themselves are driven by the session.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from kernels.attention import NO_STATS, StatsRequest
from slam.registry import Registry


@dataclass
class UpdateInputs:
    """What a rule may look at for one view (tensors on the net's device, batch 1).

    prev_state: ``[1,S,D]`` committed state the view was decoded from.
    new_state: ``[1,S,D]`` candidate state (``dec_norm_state`` output).
    feat: ``[1,N,Cenc]`` encoder tokens of the view (after ``enc_norm``).
    mean_logit: ``[1,S]`` TTT3R signal (mean pre-softmax logit), if requested by the rule.
    logit_mean: ``[1,S,N]`` layer/head-averaged logits of the image keys, if requested.
    first_of_segment: True for the first view of a segment (full update, history re-seeded).
    """

    prev_state: torch.Tensor
    new_state: torch.Tensor
    feat: torch.Tensor
    mean_logit: torch.Tensor | None = None
    logit_mean: torch.Tensor | None = None
    first_of_segment: bool = False


def blend(new_state: torch.Tensor, prev_state: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``new * G + old * (1 - G)`` with ``weight G [1,S]`` broadcast over channels (official arithmetic)."""
    g = weight[..., None].to(new_state.dtype)
    return new_state * g + prev_state * (1 - g)


class UpdateRule(ABC):
    """A state-update strategy. ``stats`` tells the decoder which attention statistics to collect."""

    name: str = ""
    stats: StatsRequest = NO_STATS

    def reset(self) -> None:  # noqa: B027 - stateless rules have nothing to forget
        """Forget per-segment history (called at every state reset)."""

    @abstractmethod
    def weights(self, inputs: UpdateInputs) -> torch.Tensor:
        """Per-token update weights ``[1,S]`` in [0,1] for this view."""

    def __call__(self, inputs: UpdateInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """``(committed state [1,S,D], weights [1,S])``."""
        weight = self.weights(inputs)
        return blend(inputs.new_state, inputs.prev_state, weight), weight


UPDATE_RULES: Registry[type[UpdateRule]] = Registry("state update rule")


def create_update_rule(name: str) -> UpdateRule:
    """Instantiate the rule registered as ``name`` (raises RegistryError for unknown names)."""
    return UPDATE_RULES.get(name)()


def _full(inputs: UpdateInputs) -> torch.Tensor:
    s = inputs.new_state
    return torch.ones(s.shape[0], s.shape[1], device=s.device, dtype=s.dtype)


@UPDATE_RULES.register("cut3r")
class Cut3rRule(UpdateRule):
    """Overwrite: ``G = 1``."""

    name = "cut3r"

    def weights(self, inputs: UpdateInputs) -> torch.Tensor:
        return _full(inputs)


@UPDATE_RULES.register("ttt3r")
class Ttt3rRule(UpdateRule):
    """``G = sigmoid(mean pre-softmax cross-attention logit)`` per state token (1 on a segment's first view)."""

    name = "ttt3r"
    stats = StatsRequest(mean_logit=True)

    def weights(self, inputs: UpdateInputs) -> torch.Tensor:
        if inputs.first_of_segment:
            return _full(inputs)
        if inputs.mean_logit is None:
            raise ValueError("ttt3r needs the decoder's mean_logit statistic")
        return torch.sigmoid(inputs.mean_logit.float())


@UPDATE_RULES.register("ttsa3r")
class Ttsa3rRule(UpdateRule):
    """Temporal x spatial gate; keeps the previous candidate state and encoder tokens (fixed size)."""

    name = "ttsa3r"
    stats = StatsRequest(head_logit_sum=True, skip_keys=1)

    def __init__(self) -> None:
        self.prev_new_state: torch.Tensor | None = None  # [1,S,D]
        self.prev_feat: torch.Tensor | None = None  # [1,N,Cenc]
        #: the last temporal / spatial masks ``[1,S]`` (diagnostics; None on a segment's first view)
        self.last_temporal: torch.Tensor | None = None
        self.last_spatial: torch.Tensor | None = None

    def reset(self) -> None:
        self.prev_new_state = None
        self.prev_feat = None
        self.last_temporal = self.last_spatial = None

    def weights(self, inputs: UpdateInputs) -> torch.Tensor:
        new_state, feat = inputs.new_state.float(), inputs.feat.float()
        if inputs.first_of_segment or self.prev_new_state is None:
            weight = _full(inputs)
            self.last_temporal = self.last_spatial = None
        else:
            if self.prev_feat.shape != feat.shape:
                raise ValueError(f"ttsa3r needs the same token count on consecutive views, got "
                                 f"{tuple(self.prev_feat.shape)} then {tuple(feat.shape)}")
            if inputs.logit_mean is None:
                raise ValueError("ttsa3r needs the decoder's logit_mean statistic")
            change = (new_state - self.prev_new_state).norm(dim=-1)  # [1,S]
            temporal = torch.sigmoid(change / change.mean() - 1.5)
            cur = feat / feat.norm(dim=-1, keepdim=True)
            prev = self.prev_feat / self.prev_feat.norm(dim=-1, keepdim=True)
            dissimilarity = 1.0 - (cur * prev).sum(dim=-1)  # [1,N]
            interaction = inputs.logit_mean.float().abs() * dissimilarity.unsqueeze(1)  # [1,S,N]
            spatial = torch.sigmoid(interaction.max(dim=-1).values)  # [1,S]
            weight = temporal * spatial
            self.last_temporal, self.last_spatial = temporal, spatial
        self.prev_new_state = new_state.detach().clone()
        self.prev_feat = feat.detach().clone()
        return weight
