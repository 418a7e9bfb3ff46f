"""The low-level streaming API of the CUT3R family: one :class:`StreamSession` per image stream.

::

    net = Cut3rNet(cfg); net.load_state_dict(sd, strict=True)
    session = net.session(update="ttsa3r", reset_every=None)
    out = session.step(img)        # img: float32 [1,3,H,W] in [-1,1], H and W multiples of 16
    session.reset()                # back to the initial state: the next step starts a new segment

``step`` returns a dict of CPU tensors (batch 1), official names and frames:

* ``pts3d_in_self_view [1,H,W,3]`` points in this camera's frame (OpenCV axes), ``conf_self [1,H,W]`` (>= 1);
* ``pts3d_in_other_view [1,H,W,3]`` points in the segment's world frame (= its first view's camera),
  ``conf [1,H,W]``;
* ``camera_pose [1,7]`` camera-to-world ``[tx,ty,tz,qw,qx,qy,qz]`` in the segment's world frame;
* ``rgb [1,H,W,3]`` reconstructed colour in (-1,1) (if the model has an RGB head);
* ``update_weight [1,S]`` per-token weight G applied to the state at this view (1 = full overwrite);
* ``descriptor [1,Cenc]`` global descriptor: mean over tokens of the encoder output (after ``enc_norm``),
  L2-normalised (for place recognition; not an official output);
* ``segment`` / ``frame`` (int64 scalars): segment index and input-frame index of this view.

Segments and resets. A segment starts from the initial state (``decoder_embed_state(register_tokens)``)
and the initial pose memory; its first view uses the learned pose token and a full update, and its
world frame is that view's camera. ``session.reset()`` starts a new segment at the next step.
With ``reset_every=R`` the session follows the official TTT3R reset protocol for every
rule: after input frame i with ``(i + 1) % R == 0`` has been processed and committed normally, the state
and pose memory are reset and *the same image is processed again* as the first view of the new segment
(the "overlap" view). Its outputs are returned under ``out["overlap"]`` (a dict of the same form), so
the processed views line up one-to-one with the official ones: frames ``0,1,2,3,4,5`` with R=3 give
views ``0, 1, 2, overlap(2), 3, 4, 5, overlap(5)``. The overlap view's ``camera_pose`` is the link
between the two segments (the same image seen from both world frames).

Note: the official TTSA3R demo, after a reset, queries the pose memory instead of using the learned
pose token; this session uses the TTT3R protocol (learned pose token) for every rule, so that a reset
always equals a fresh start.

Memory: the state ``[1,S,D]``, pose memory ``[1,M,2D]`` (fixed buffers, updated in place), their initial
copies and the rule's history are the only tensors kept on the device between steps; all outputs are
copied to the CPU at the end of the step (on CUDA: asynchronously into pinned memory, one synchronisation
per step). The per-frame path has no other host synchronisation: no ``.item()``, no branching on tensor
values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from frontends.cut3r.update_rules import UpdateInputs, create_update_rule

OUTPUT_KEYS = ("pts3d_in_self_view", "conf_self", "pts3d_in_other_view", "conf", "camera_pose", "rgb")


class StreamSession:
    """Streaming inference on one :class:`~frontends.cut3r.model.net.Cut3rNet` (batch 1).

    Args:
        net: the network (its device and dtype are used; put it in eval mode beforehand or not: this
            class runs everything under ``torch.inference_mode``).
        update: name of the state-update rule (``cut3r``, ``ttt3r``, ``ttsa3r``).
        reset_every: reset the state after every ``reset_every`` input frames (TTT3R protocol), or None.
        autocast_dtype: e.g. ``torch.bfloat16`` to run encoder/decoders under autocast (CPU or CUDA); the
            heads and the committed state stay float32.
        compile_step: run the network's per-view step through ``torch.compile``
            (:func:`kernels.compiled.compile_step`); the eager step is its reference.
    """

    def __init__(self, net, update: str = "cut3r", reset_every: int | None = None,
                 autocast_dtype: torch.dtype | None = None, compile_step: bool = False):
        if reset_every is not None and (not isinstance(reset_every, int) or reset_every < 1):
            raise ValueError(f"reset_every must be a positive integer or None, got {reset_every!r}")
        if net.pose_token.dtype != torch.float32:
            raise ValueError("StreamSession needs float32 parameters; use autocast_dtype for reduced precision "
                             f"(got {net.pose_token.dtype})")
        self.net = net
        self.rule = create_update_rule(update)
        self.update = update
        self.reset_every = reset_every
        self.autocast_dtype = autocast_dtype
        self._process_view = net.process_view
        if compile_step:
            from kernels.compiled import compile_step as compiled

            self._process_view = compiled(net.process_view)
        with torch.inference_mode():
            init_state, self._state_pos = net.initial_state(1)
            self._init_state = init_state.float().clone()
            self._init_mem = net.initial_memory(1).float().clone()
        self.frame_count = 0  # input frames processed so far
        self.segment = 0  # index of the current segment
        self._segment_views = 0  # views processed in the current segment
        self._state = self._init_state.clone()
        self._mem = self._init_mem.clone()

    # ------------------------------------------------------------------ public API
    def reset(self) -> None:
        """Return to the initial state; the next :meth:`step` starts a new segment (a no-op on a fresh one)."""
        if self._segment_views > 0:
            self.segment += 1
        self._reset_state()

    def step(self, img: torch.Tensor) -> dict:
        """Process the next input frame ``img [1,3,H,W]`` (float, [-1,1]); returns CPU outputs (see module doc)."""
        if img.ndim != 4 or img.shape[0] != 1 or img.shape[1] != 3:
            raise ValueError(f"StreamSession.step expects an image tensor [1,3,H,W], got {tuple(img.shape)}")
        with torch.inference_mode():
            img = img.to(device=self.net.device, dtype=torch.float32, non_blocking=True)
            frame = self.frame_count
            out = self._process(img, frame)
            self.frame_count += 1
            if self.reset_every is not None and self.frame_count % self.reset_every == 0:
                self._reset_state()
                self.segment += 1
                out["overlap"] = self._process(img, frame)
            out = _to_host(out)
        return _plain_tensors(out)

    @property
    def state(self) -> torch.Tensor:
        """The committed state ``[1,S,D]`` (a CPU copy)."""
        return self._state.detach().cpu().clone()

    # ------------------------------------------------------------------ internals
    def _reset_state(self) -> None:
        self._state.copy_(self._init_state)
        self._mem.copy_(self._init_mem)
        self._segment_views = 0
        self.rule.reset()

    def _process(self, img: torch.Tensor, frame: int) -> dict:
        first = self._segment_views == 0
        view = self._process_view(img, self._state, self._state_pos, self._mem, first_of_segment=first,
                                  stats=self.rule.stats, autocast_dtype=self.autocast_dtype)
        decoded = view.decoded
        inputs = UpdateInputs(prev_state=self._state, new_state=decoded.new_state.float(), feat=view.feat,
                              mean_logit=decoded.mean_logit, logit_mean=decoded.logit_mean, first_of_segment=first)
        committed, weight = self.rule(inputs)
        # state and pose memory live in fixed buffers (stable addresses, no per-frame allocation kept)
        self._state.copy_(committed)
        self._mem.copy_(view.new_mem)  # the pose memory is always fully overwritten (official m = 1)
        self._segment_views += 1

        out = {k: view.outputs[k].detach().float() for k in OUTPUT_KEYS if k in view.outputs}
        out["update_weight"] = weight.detach().float()
        out["descriptor"] = F.normalize(view.feat.float().mean(dim=1), dim=-1)
        out["segment"] = torch.tensor(self.segment)
        out["frame"] = torch.tensor(frame)
        return out


def _to_host(out: dict) -> dict:
    """Copy every tensor of ``out`` to the CPU. On CUDA the copies go into pinned memory asynchronously and
    the stream is synchronised once, instead of one blocking transfer per output."""
    flat = [v for v in out.values() if isinstance(v, torch.Tensor) and v.device.type == "cuda"]
    if not flat:
        return {k: _to_host(v) if isinstance(v, dict) else v for k, v in out.items()}

    def copy(value):
        if isinstance(value, dict):
            return {k: copy(v) for k, v in value.items()}
        if value.device.type != "cuda":
            return value
        host = torch.empty(value.shape, dtype=value.dtype, pin_memory=True)
        return host.copy_(value, non_blocking=True)

    copied = copy(out)
    torch.cuda.current_stream(flat[0].device).synchronize()
    return copied


def _plain_tensors(out: dict) -> dict:
    """Clone outside inference mode so callers get ordinary tensors (in-place edits allowed)."""
    return {k: _plain_tensors(v) if isinstance(v, dict) else v.clone() for k, v in out.items()}
