"""Start-up check of RGB-D input: how much valid depth there is, how much of it the options keep, and whether
colour and depth are registered (pixel-aligned).

Registration test: at a depth discontinuity (an object boundary) the colour image almost always has an
intensity edge too. For pixel-aligned colour and depth, the mean image-gradient magnitude on depth edges is
highest with no shift between the two; for colour from a second, unregistered camera (Kinect v1 raw data)
it is highest at some other shift, which also varies with depth (parallax). :func:`registration_score` is
the gradient on depth edges at zero shift divided by its maximum over shifts within ``radius`` pixels
(1 = registered).

Nothing here changes data; :func:`check_rgbd` returns a :class:`DataReport` and logs one ``WARNING`` line
per problem.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np

from slam.pointmaps import depth_edges

log = logging.getLogger(__name__)

#: options that keep less than this fraction of the input's valid depth are reported
MIN_KEPT_FRACTION = 0.5
#: frames whose zero-shift gradient-on-depth-edges score is below this fraction of the best shift's count
#: as misregistered
REGISTERED_SCORE = 0.95


@dataclass
class DataReport:
    """What :func:`check_rgbd` found.

    Attributes:
        valid_fraction: fraction of input pixels with valid depth (> 0, finite).
        kept_fraction: fraction of the input's valid depth that is still valid after the options (working
            depth valid pixels / input valid pixels, area-corrected for downsampling); 1.0 if not given.
        depth_percentiles: depth (m) at the 5, 50 and 95 % percentiles of the valid input depth.
        registration: :func:`registration_score` per checked frame (empty when not computed).
        warnings: the one-line warnings that were logged.
    """

    valid_fraction: float
    kept_fraction: float
    depth_percentiles: tuple[float, float, float]
    registration: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def registered(self) -> bool:
        """True when most checked frames look registered (or none was checked)."""
        if not self.registration:
            return True
        return float(np.median(self.registration)) >= REGISTERED_SCORE


def registration_score(rgb: np.ndarray, depth: np.ndarray, radius: int = 8, edge_jump: float = 0.05) -> float | None:
    """Colour/depth registration score of one frame in (0, 1] (module docstring), or None without depth edges.

    Args:
        rgb: HxWx3 uint8 colour image.
        depth: HxW depth in metres (0 = invalid), same size.
        radius: largest shift tried (pixels), in x and y.
        edge_jump: relative depth jump that marks a depth edge (see :func:`slam.pointmaps.depth_edges`).
    """
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
    grad = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    edges = depth_edges(depth, edge_jump)
    h, w = edges.shape
    inner = edges[radius: h - radius, radius: w - radius]
    n = int(inner.sum())
    if n < 100:
        return None
    ys, xs = np.nonzero(inner)
    scores = np.array([[grad[ys + radius + dy, xs + radius + dx].mean() for dx in range(-radius, radius + 1)]
                       for dy in range(-radius, radius + 1)])
    return float(scores[radius, radius] / max(scores.max(), 1e-9))


def check_rgbd(rgb: np.ndarray | list, depth: np.ndarray | list, kept_depth: np.ndarray | None = None,
               what_cuts: str = "the depth options", registration: bool = True) -> DataReport:
    """Check the first frame(s) of an RGB-D stream; log one warning line per problem found.

    Args:
        rgb: HxWx3 uint8 image, or a list of them (several frames give a steadier registration verdict).
        depth: HxW input depth (m, 0 = invalid), or a list matching ``rgb``.
        kept_depth: the first frame's depth as the consumer will use it (after range cuts, downsampling),
            any size; None = not checked.
        what_cuts: names the options that made ``kept_depth``, for the warning.
        registration: also test colour/depth registration.
    """
    rgbs = rgb if isinstance(rgb, list) else [rgb]
    depths = depth if isinstance(depth, list) else [depth]
    d0 = np.asarray(depths[0], np.float32)
    valid = np.isfinite(d0) & (d0 > 0)
    valid_fraction = float(valid.mean())
    pct = tuple(float(v) for v in np.percentile(d0[valid], [5, 50, 95])) if valid.any() else (0.0, 0.0, 0.0)
    kept = 1.0
    if kept_depth is not None and valid.any():
        kept = float(np.clip((np.asarray(kept_depth) > 0).mean() / valid_fraction, 0.0, 1.0))
    report = DataReport(valid_fraction, kept, pct)
    if not valid.any():
        report.warnings.append("the first frame has no valid depth")
    elif kept < MIN_KEPT_FRACTION:
        report.warnings.append(
            f"{what_cuts} keep only {100 * kept:.0f} % of the valid depth (input depth 5/50/95 % at "
            f"{pct[0]:.2f}/{pct[1]:.2f}/{pct[2]:.2f} m): most of the scene is ignored")
    if registration:
        scores = [registration_score(c, d) for c, d in zip(rgbs, depths)]
        report.registration = [s for s in scores if s is not None]
        if not report.registered:
            report.warnings.append(
                f"colour and depth do not look pixel-aligned (image edges match depth edges best away from zero "
                f"shift, median score {np.median(report.registration):.2f} < {REGISTERED_SCORE}): "
                f"photometric terms will be biased")
    for text in report.warnings:
        log.warning("data check: %s", text)
    return report
