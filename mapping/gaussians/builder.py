"""Gaussian map of a list of keyframes: windows -> tttLRM -> world frame -> opacity pruning -> map crop.

Every keyframe's Gaussians come from exactly one window (the one that owns it); a window sees only its own views,
and is normalised on its own poses (spec sections 4.2 and 10). Results are cached per window and recomputed when
the window's keyframes or poses change.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from mapping.config import GaussiansConfig
from mapping.gaussians.loading import load_model
from mapping.gaussians.network import OUTPUT_KEYS as GAUSSIAN_KEYS
from mapping.gaussians.network import TttLrm
from mapping.gaussians.poses import normalize_poses, to_world
from mapping.gaussians.views import Window, fit_view, plan_windows
from slam.errors import SlamError

log = logging.getLogger(__name__)



class DeviceMemoryError(SlamError):
    """The device cannot hold a window; the message says how much memory it needs."""


@dataclass
class View:
    """One keyframe as the model sees it: RGB, OpenCV intrinsics of that RGB, world pose ``T_wc``."""

    kf_id: int
    rgb: np.ndarray
    K: np.ndarray
    pose: np.ndarray


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def window_bytes(model: TttLrm, n_views: int, height: int, width: int) -> int:
    """Rough peak memory (bytes, float32) of one window besides the weights: per token the residual stream,
    q/k/v, MLP and fast-MLP hidden activations; per pixel the decoder output and the Gaussians."""
    arch = model.arch
    tokens = n_views * (height // arch.patch_size) * (width // arch.patch_size)
    pixels = n_views * height * width
    per_token = 12 * arch.d + 4 * max(arch.ttt_hidden, arch.mlp_hidden)
    return 4 * (tokens * per_token + pixels * (2 * arch.channels + 24))


def _available_bytes(device: torch.device) -> int | None:
    """Free memory of ``device`` in bytes (CUDA: free device memory; CPU: MemAvailable), None if unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class GaussianMapBuilder:
    """Runs tttLRM on keyframe windows and keeps the world-frame Gaussians per window.

    Attributes:
        cfg: the ``mapping.gaussians`` options.
        model: the loaded network.
        mode: 'full' or 'ar' (resolved from 'auto').
        size: ``(H, W)`` model input.
    """

    def __init__(self, cfg: GaussiansConfig):
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.model = load_model(cfg.checkpoint, device=self.device, ns_dtype=cfg.ns_dtype, config=cfg.config,
                                autocast=cfg.autocast)
        arch = self.model.arch
        self.mode = arch.ttt_scan if cfg.mode == "auto" else cfg.mode
        self.size = tuple(cfg.image_size) if cfg.image_size else (arch.image_size, arch.image_size_x)
        self._cache: dict[tuple, dict[str, np.ndarray]] = {}

    def windows(self, n: int) -> list[Window]:
        multiple = self.model.arch.miniupdate_views if self.mode == "ar" else 1
        return plan_windows(n, self.cfg.window, multiple)

    def build(self, views: Sequence[View], bounds: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """The Gaussians of all ``views`` (in keyframe order) in the world frame, pruned and optionally cropped
        to the axis-aligned ``bounds`` ``(lo, hi)``. Windows whose views and poses are unchanged are reused."""
        parts, cache = [], {}
        for plan in self.windows(len(views)):
            chosen = [views[i] for i in plan.views]
            key = (plan.views, plan.owned, tuple((v.kf_id, v.pose.round(9).tobytes()) for v in chosen))
            part = self._cache.get(key)
            if part is None:
                owned = [plan.views.index(i) for i in plan.owned]
                part = self._run_window(chosen, owned)
            cache[key] = part
            parts.append(part)
        self._cache = cache
        if not parts:
            return empty_gaussians(self.model.arch.n_sh)
        out = {k: np.concatenate([p[k] for p in parts]) for k in GAUSSIAN_KEYS}
        if bounds is not None:
            inside = np.all((out["means"] >= bounds[0]) & (out["means"] <= bounds[1]), axis=1)
            out = {k: v[inside] for k, v in out.items()}
        return out

    def _run_window(self, views: Sequence[View], owned: Sequence[int]) -> dict[str, np.ndarray]:
        height, width = self.size
        fitted = [fit_view(v.rgb, v.K, self.size, self.cfg.fit) for v in views]
        images = torch.from_numpy(np.stack([f[0] for f in fitted]))[None]
        fxfycxcy = torch.from_numpy(np.stack([f[1] for f in fitted]))[None]
        c2w_n, anchor, scale = normalize_poses(np.stack([v.pose for v in views]), self.mode)
        self._check_memory(len(views), height, width)
        try:
            out = self.model.predict(images, torch.from_numpy(c2w_n)[None], fxfycxcy, mode=self.mode)
        except torch.OutOfMemoryError:
            raise DeviceMemoryError(self._memory_message(len(views), height, width, None)) from None
        per_view = height * width
        owned_idx = torch.cat([torch.arange(i * per_view, (i + 1) * per_view) for i in sorted(set(owned))])
        g = {k: out[k][0][owned_idx.to(out[k].device)] for k in GAUSSIAN_KEYS}
        g = prune_by_opacity(g, self.cfg.min_opacity, self.cfg.keep_ratio)
        g = {k: v.cpu().numpy() for k, v in g.items()}
        world = to_world(g, anchor, scale)
        world["opacity_logits"] = world["opacity_logits"].reshape(-1)
        log.info("tttLRM window of %d views (keyframes %d-%d): %d Gaussians kept", len(views), views[0].kf_id,
                 views[-1].kf_id, len(world["means"]))
        return world

    def _memory_message(self, n_views: int, height: int, width: int, free: int | None) -> str:
        need = window_bytes(self.model, n_views, height, width)
        have = "" if free is None else f", {free / 2**30:.1f} GiB free"
        return (f"mapping.gaussians: {self.device} cannot hold a window of {n_views} views at {height}x{width}: "
                f"needs about {need / 2**30:.1f} GiB besides the weights{have}; lower mapping.gaussians.window "
                "or mapping.gaussians.image_size")

    def _check_memory(self, n_views: int, height: int, width: int) -> None:
        free = _available_bytes(self.device)
        if free is not None and window_bytes(self.model, n_views, height, width) > free:
            raise DeviceMemoryError(self._memory_message(n_views, height, width, free))


def prune_by_opacity(g: dict[str, torch.Tensor], min_opacity: float, keep_ratio: float) -> dict[str, torch.Tensor]:
    """Keep Gaussians with ``sigmoid(opacity) > min_opacity``, then the ``ceil(keep_ratio * N)`` most opaque of
    the N given (descending opacity; equal opacities keep their input order). Deterministic."""
    logits = g["opacity_logits"].reshape(-1)
    n_keep = math.ceil(keep_ratio * logits.numel())
    order = torch.sort(logits, descending=True, stable=True).indices[:n_keep]
    threshold = math.log(min_opacity / (1 - min_opacity)) if min_opacity > 0 else -math.inf
    order = order[logits[order] > threshold]
    return {k: v[order] for k, v in g.items()}


def empty_gaussians(n_sh: int) -> dict[str, np.ndarray]:
    return {"means": np.zeros((0, 3), np.float32), "sh": np.zeros((0, n_sh, 3), np.float32),
            "log_scales": np.zeros((0, 3), np.float32), "quats": np.zeros((0, 4), np.float32),
            "opacity_logits": np.zeros((0,), np.float32)}
