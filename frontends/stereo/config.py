"""Configuration of the classical stereo frontend (``frontend.stereo`` section).

Thresholds are stated in units that transfer between stereo rigs: pixels of the full-resolution image
(disparity noise, reprojection error), relative depth error (what the rig's ``focal * baseline`` allows at a
given depth: ``sigma_z / z = z * sigma_d / (f * b)``), fractions of the image width and of the scene depth.
"""

from __future__ import annotations

from dataclasses import dataclass

FEATURES = ("orb", "sift")


@dataclass
class StereoConfig:
    """Options of the ``stereo`` frontend (SGBM depth + feature tracking with PnP, frame-to-keyframe).

    Attributes:
        downsample: integer factor of the dense disparity (SGBM) working size; the output pointmap,
            confidence and colours are at that size.
        max_disparity_fraction: largest disparity searched, as a fraction of the image width (sets the
            nearest measurable depth ``f * b / (fraction * W)``).
        block_size: SGBM matching block size (odd, pixels of the working size).
        lr_max_diff: left-right consistency: largest difference (working pixels) between the left
            disparity and the right disparity at the matched pixel.
        disparity_sigma: disparity noise (pixels of the full-resolution image) assumed for depth errors.
        max_depth_error: largest relative depth error kept, ``z * disparity_sigma / (f * b)``; farther depth
            is invalid (for the pointmap and for tracking points). The confidence halves at half of it.
        features: ``orb`` or ``sift`` keypoints on the full-resolution left image.
        n_features: keypoints detected per frame.
        ratio: Lowe ratio test of descriptor matches.
        reprojection_px: PnP-RANSAC inlier threshold (full-resolution pixels).
        min_inliers: fewer PnP inliers than this is a tracking failure: the frame keeps the
            constant-velocity prediction and becomes the new keyframe (stereo depth re-initialises it).
        max_step_depth: an estimate that moves farther than this fraction of the keyframe's median point
            depth from the constant-velocity prediction is a tracking failure too (a wrong solve).
        keyframe_min_tracked: a new tracking keyframe is taken when the PnP inliers fall below this fraction
            of the keyframe's stereo points,
        keyframe_translation: or the camera moved this fraction of the keyframe's median point depth,
        keyframe_rotation_deg: or turned this much.
        failure_confidence: confidence factor (pointmap and pose) of frames whose tracking failed.
        descriptor_size: (width, height) of the global descriptor's thumbnail grid.
        pair_min_inliers: PnP inliers a :meth:`pair` estimate needs to be trusted at all.
    """

    downsample: int = 2
    max_disparity_fraction: float = 0.1
    block_size: int = 5
    lr_max_diff: float = 1.0
    disparity_sigma: float = 0.5
    max_depth_error: float = 0.1
    features: str = "orb"
    n_features: int = 2000
    ratio: float = 0.8
    reprojection_px: float = 2.0
    min_inliers: int = 20
    max_step_depth: float = 0.5
    keyframe_min_tracked: float = 0.5
    keyframe_translation: float = 0.1
    keyframe_rotation_deg: float = 10.0
    failure_confidence: float = 0.3
    descriptor_size: tuple[int, int] = (16, 12)
    pair_min_inliers: int = 30

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad option."""
        if not isinstance(self.downsample, int) or self.downsample < 1:
            raise ValueError(f"downsample must be an integer >= 1, got {self.downsample!r}")
        if not 0 < self.max_disparity_fraction <= 0.5:
            raise ValueError(f"max_disparity_fraction must be in (0, 0.5], got {self.max_disparity_fraction!r}")
        if self.block_size < 1 or self.block_size % 2 == 0:
            raise ValueError(f"block_size must be odd and >= 1, got {self.block_size!r}")
        if self.features not in FEATURES:
            raise ValueError(f"features must be one of {', '.join(FEATURES)}, got {self.features!r}")
        for name in ("lr_max_diff", "disparity_sigma", "max_depth_error", "reprojection_px", "max_step_depth",
                     "keyframe_translation", "keyframe_rotation_deg", "ratio"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("keyframe_min_tracked", "failure_confidence"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.min_inliers < 6 or self.pair_min_inliers < 6 or self.n_features < 10:
            raise ValueError("min_inliers and pair_min_inliers must be >= 6 and n_features >= 10")
        if len(self.descriptor_size) != 2 or min(self.descriptor_size) < 2:
            raise ValueError(f"descriptor_size must be (width, height) >= 2, got {self.descriptor_size!r}")
