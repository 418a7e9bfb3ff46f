"""SLAM frontend ``stream3r`` (config section ``frontend.stream3r``): registration and options.

This module is light on purpose (no torch import): the network and the per-frame processing live in
:mod:`frontends.stream3r.engine`, imported when the frontend is created. What a step produces is described
there.
"""

from __future__ import annotations

from dataclasses import dataclass

from frontends.base import Frontend, register_frontend
from slam.errors import ConfigError
from slam.types import Frame, FrontendOutput, PairEstimate

AUTOCAST = ("none", "bf16", "fp16")
MODES = ("causal", "window")


@dataclass
class Stream3rFrontendConfig:
    """Options of the ``stream3r`` frontend.

    Attributes:
        checkpoint: model folder (``config.json`` + ``model.safetensors``) or the ``.safetensors`` file (required).
        device: ``'cpu'`` or ``'cuda'`` (``'cuda:N'``).
        mode: ``'window'`` (anchor + last ``window`` frames in the KV cache: flat memory) or ``'causal'``
            (every frame is kept: memory grows with the sequence).
        window: window length of ``window`` mode (official 5).
        reset_every: clear the session every N frames (a new segment starts), None = never.
        width: working width (official 518; height follows the aspect ratio, multiple of 14, at most ``width``).
        autocast: ``'bf16'``/``'fp16'`` run the aggregator under CUDA autocast (heads stay float32, as in
            the official demo); ``'none'`` = float32.
        calibrated: use the frame's ``K`` (mapped to the working size) instead of the predicted fields of view.
        conf_threshold: depth confidences below this become 0 (invalid); confidences are >= 1, so values <= 1
            keep every pixel.
        descriptor: compute the global descriptor (mean DINOv2 patch token, L2-normalised).
    """

    checkpoint: str | None = None
    device: str = "cpu"
    mode: str = "window"
    window: int = 5
    reset_every: int | None = None
    width: int = 518
    autocast: str = "none"
    calibrated: bool = False
    conf_threshold: float = 0.0
    descriptor: bool = True

    def validate(self) -> None:
        """Raise ValueError for an invalid combination (the config loader names the section)."""
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {self.mode!r}")
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        if self.reset_every is not None and self.reset_every < 1:
            raise ValueError(f"reset_every must be >= 1 or null, got {self.reset_every}")
        if self.width < 14 or self.width % 14:
            raise ValueError(f"width must be a positive multiple of 14 (official 518), got {self.width}")
        if self.autocast not in AUTOCAST:
            raise ValueError(f"autocast must be one of {list(AUTOCAST)}, got {self.autocast!r}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        if self.autocast != "none" and not self.device.startswith("cuda"):
            raise ValueError(f"autocast={self.autocast!r} needs device 'cuda' (got {self.device!r})")


@register_frontend("stream3r", Stream3rFrontendConfig, section="stream3r")
class Stream3rFrontend(Frontend):
    """STream3R streaming frontend; see :class:`frontends.stream3r.engine.Stream3rEngine`."""

    def __init__(self, config: Stream3rFrontendConfig):
        try:
            config.validate()
        except ValueError as exc:
            raise ConfigError(f"frontend.stream3r: {exc}") from None
        if not config.checkpoint:
            raise ConfigError("frontend.stream3r.checkpoint is required for frontend 'stream3r' "
                              "(model folder with config.json + model.safetensors)")
        from frontends.stream3r.engine import Stream3rEngine

        self.config = config
        self.engine = Stream3rEngine(config)

    def reset(self) -> None:
        self.engine.reset()

    def step(self, frame: Frame) -> FrontendOutput:
        return self.engine.step(frame)

    def pair(self, a: Frame, b: Frame) -> PairEstimate:
        return self.engine.pair(a, b)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
        self.engine = None
