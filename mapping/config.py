"""Options of the ``mapping:`` and ``viz:`` config sections.

Both are plain dataclasses read by the YAML config loader; ``validate()`` raises ``ValueError`` whose
message names the offending key (the loader turns it into a :class:`~slam.errors.ConfigError`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from slam.config_loader import require

#: ways of watching a run; ``viz.mode`` takes one of these (the CLI accepts ``viz=save`` as shorthand)
VIZ_MODES = ("off", "spawn", "connect", "serve", "save")
#: when the TSDF volume is built: always, never, or only for metric (RGB-D) runs
TSDF_ENABLED = ("auto", "on", "off")
#: what the TSDF does when keyframe poses change (loop closure, optimisation)
TSDF_REBUILD = ("on_change", "on_loop", "never")
#: what spawn/connect do when no viewer can be reached
VIZ_FALLBACKS = ("save", "off")
#: update schedule of the tttLRM fast weights: the checkpoint's own ('auto'), all views at once, 4-view chunks
GAUSSIAN_MODES = ("auto", "full", "ar")
#: dtype of the tttLRM Newton-Schulz step ('bf16' as the official code)
GAUSSIAN_NS_DTYPES = ("bf16", "fp32")
#: how keyframe images reach the trained aspect ratio: centre crop (default) or stretch (as the official loader)
GAUSSIAN_FIT = ("crop", "stretch")


@dataclass
class TsdfConfig:
    """Truncated signed distance volume (Open3D ``VoxelBlockGrid``) built from the keyframes.

    Attributes:
        enabled: 'auto' (only when the run is metric, i.e. RGB-D), 'on' (also for up-to-scale frontends,
            using the pointmap depth in the frontend's scale), 'off'.
        voxel_length: voxel edge in metres (map units).
        sdf_trunc: truncation distance of the signed distance, metres; usually 3-5 voxels.
        depth_trunc: depth beyond this (metres) is ignored when integrating.
        image_scale: keyframe images are stored for re-integration at this fraction of their size
            (0.5: 0.5 MB per 640x480 RGB-D keyframe, a pixel ~1 cm wide at 3 m; 1.0 = full resolution, 4x the
            memory and integration time).
        rebuild: after keyframe poses change: 'on_change' re-integrates every keyframe at its new pose when
            any integrated keyframe moved more than the tolerances below, 'on_loop' only when a new loop
            edge arrived, 'never' keeps the volume as integrated. Rebuilds are deferred until a mesh is needed
            (export, viewer), so many pose updates cost one rebuild.
        move_tolerance: translation (map units) above which a keyframe counts as moved.
        rotation_tolerance_deg: rotation (degrees) above which a keyframe counts as moved.
        min_observations: voxels seen by fewer keyframes than this are left out of the mesh.
    """

    enabled: str = "auto"
    voxel_length: float = 0.02
    sdf_trunc: float = 0.08
    depth_trunc: float = 4.0
    image_scale: float = 0.5
    rebuild: str = "on_change"
    move_tolerance: float = 0.005
    rotation_tolerance_deg: float = 0.5
    min_observations: float = 1.0

    def validate(self) -> None:
        if self.enabled not in TSDF_ENABLED:
            raise ValueError(f"mapping.tsdf.enabled: expected one of {', '.join(TSDF_ENABLED)}, got {self.enabled!r}")
        if self.rebuild not in TSDF_REBUILD:
            raise ValueError(f"mapping.tsdf.rebuild: expected one of {', '.join(TSDF_REBUILD)}, got {self.rebuild!r}")
        _positive("mapping.tsdf.voxel_length", self.voxel_length)
        _positive("mapping.tsdf.sdf_trunc", self.sdf_trunc)
        _positive("mapping.tsdf.depth_trunc", self.depth_trunc)
        if not 0.0 < self.image_scale <= 1.0:
            raise ValueError(f"mapping.tsdf.image_scale: must be in (0, 1], got {self.image_scale}")
        if self.min_observations < 0:
            raise ValueError(f"mapping.tsdf.min_observations: must be >= 0, got {self.min_observations}")
        require(self, move_tolerance={"ge": 0}, rotation_tolerance_deg={"ge": 0})


@dataclass
class GaussiansConfig:
    """Gaussian-splat map from the keyframes with tttLRM (optional; needs a user-downloaded checkpoint).

    Attributes:
        enabled: run the plugin (off by default).
        checkpoint: tttLRM checkpoint (official ``.pt`` or converted ``.safetensors``).
        config: the checkpoint's YAML in the official layout; None = ``<checkpoint>.yaml`` beside it, else the
            released architecture.
        mode: 'auto' (the checkpoint's ``ttt_scan``), 'full' or 'ar' (windows padded to multiples of 4 views).
        window: keyframes per model run (the released models were trained with 16-64 views).
        every_k_keyframes: also rebuild the map every this many new keyframes during the run; 0 = only after the
            final optimisation.
        image_size: ``[H, W]`` model input (multiples of 8); None = the checkpoint's trained size (536 x 960).
        fit: 'crop' centre-crops each keyframe to the trained aspect ratio before resizing (no distortion);
            'stretch' resizes with independent x / y factors as the official data loader does.
        ns_dtype: Newton-Schulz dtype, 'bf16' (official) or 'fp32'.
        autocast: on CUDA, bf16 autocast of the dense layers as the official inference; False = float32.
        device: 'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N'.
        min_opacity: Gaussians with ``sigmoid(opacity) <= min_opacity`` are dropped.
        keep_ratio: per window, keep this fraction of the Gaussians with the highest opacity (ties by index;
            1 = keep all that pass ``min_opacity``).
        crop_to_map: drop Gaussians outside the bounds of the keyframe map (points and keyframe centres),
            enlarged by ``map_margin`` times their diagonal; sky and far background go.
        map_margin: see ``crop_to_map``.
        file: output file name inside the run folder (3DGS PLY layout).
        rerun_max_points: at most this many Gaussian centres are logged to Rerun (highest opacity first).
    """

    enabled: bool = False
    checkpoint: str | None = None
    config: str | None = None
    mode: str = "auto"
    window: int = 16
    every_k_keyframes: int = 0
    image_size: list[int] | None = None
    fit: str = "crop"
    ns_dtype: str = "bf16"
    autocast: bool = True
    device: str = "auto"
    min_opacity: float = 0.001
    keep_ratio: float = 0.4
    crop_to_map: bool = True
    map_margin: float = 0.1
    file: str = "gaussians.ply"
    rerun_max_points: int = 200_000

    def validate(self) -> None:
        if self.mode not in GAUSSIAN_MODES:
            raise ValueError(f"mapping.gaussians.mode: expected one of {', '.join(GAUSSIAN_MODES)}, got {self.mode!r}")
        if self.ns_dtype not in GAUSSIAN_NS_DTYPES:
            raise ValueError(f"mapping.gaussians.ns_dtype: expected one of {', '.join(GAUSSIAN_NS_DTYPES)}, "
                             f"got {self.ns_dtype!r}")
        if self.fit not in GAUSSIAN_FIT:
            raise ValueError(f"mapping.gaussians.fit: expected one of {', '.join(GAUSSIAN_FIT)}, got {self.fit!r}")
        if self.enabled and not self.checkpoint:
            raise ValueError("mapping.gaussians.checkpoint: required when mapping.gaussians.enabled is true "
                             "(download dl3dv_full.pt or dl3dv_ar.pt from Hugging Face chenwang/tttLRM)")
        if self.enabled and not Path(self.checkpoint).expanduser().is_file():
            raise ValueError(f"mapping.gaussians.checkpoint: file not found: {self.checkpoint} (download "
                             "dl3dv_full.pt or dl3dv_ar.pt from Hugging Face chenwang/tttLRM)")
        if self.window < 1:
            raise ValueError(f"mapping.gaussians.window: must be >= 1, got {self.window}")
        if self.every_k_keyframes < 0:
            raise ValueError(f"mapping.gaussians.every_k_keyframes: must be >= 0, got {self.every_k_keyframes}")
        if self.image_size is not None and (len(self.image_size) != 2 or any(v < 8 or v % 8 for v in self.image_size)):
            raise ValueError(f"mapping.gaussians.image_size: expected [H, W], multiples of 8, got {self.image_size}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError(f"mapping.gaussians.device: expected auto, cpu, cuda or cuda:N, got {self.device!r}")
        if not 0.0 <= self.min_opacity < 1.0:
            raise ValueError(f"mapping.gaussians.min_opacity: must be in [0, 1), got {self.min_opacity}")
        if not 0.0 < self.keep_ratio <= 1.0:
            raise ValueError(f"mapping.gaussians.keep_ratio: must be in (0, 1], got {self.keep_ratio}")
        if self.map_margin < 0:
            raise ValueError(f"mapping.gaussians.map_margin: must be >= 0, got {self.map_margin}")
        if not self.file.endswith(".ply"):
            raise ValueError(f"mapping.gaussians.file: must end in .ply, got {self.file!r}")
        if self.rerun_max_points < 0:
            raise ValueError(f"mapping.gaussians.rerun_max_points: must be >= 0, got {self.rerun_max_points}")


@dataclass
class MappingConfig:
    """The keyframe point map and its exports.

    Attributes:
        voxel_size: voxel edge (map units) of the fused world point map, also applied to each keyframe's
            points in its camera frame; 0 disables downsampling.
        min_confidence: keyframe points with a confidence below this are dropped (points with confidence
            <= 0, non-finite coordinates or non-positive depth are always dropped).
        point_stride: keep every ``point_stride``-th pixel of the frontend's full-size pointmap of a keyframe
            in both directions (when only the backend's subsampled keyframe pointmap is available, of that).
        max_depth: drop points farther than this along the camera axis (map units); 0 = no limit.
        tsdf: TSDF volume options (mesh for metric depth).
        export_points: write ``map.ply`` (fused coloured points) at the end of the run and on interrupt.
        export_mesh: write ``mesh.ply`` (TSDF mesh) when a TSDF is built.
        points_file: file name of the point map inside the output folder.
        mesh_file: file name of the mesh inside the output folder.
        gaussians: Gaussian-splat map with tttLRM (optional plugin, off by default).
    """

    voxel_size: float = 0.02
    min_confidence: float = 0.0
    point_stride: int = 2
    max_depth: float = 0.0
    tsdf: TsdfConfig = field(default_factory=TsdfConfig)
    export_points: bool = True
    export_mesh: bool = True
    points_file: str = "map.ply"
    mesh_file: str = "mesh.ply"
    gaussians: GaussiansConfig = field(default_factory=GaussiansConfig)

    def validate(self) -> None:
        if self.voxel_size < 0:
            raise ValueError(f"mapping.voxel_size: must be >= 0, got {self.voxel_size}")
        if self.point_stride < 1:
            raise ValueError(f"mapping.point_stride: must be >= 1, got {self.point_stride}")
        if self.max_depth < 0:
            raise ValueError(f"mapping.max_depth: must be >= 0, got {self.max_depth}")
        for key, name in (("points_file", self.points_file), ("mesh_file", self.mesh_file)):
            if not name.endswith(".ply"):
                raise ValueError(f"mapping.{key}: must end in .ply, got {name!r}")
        self.tsdf.validate()
        self.gaussians.validate()


@dataclass
class VizConfig:
    """The live Rerun viewer sink.

    Attributes:
        mode: 'off', 'spawn' (start a local viewer), 'connect' (to a running viewer at ``url``),
            'serve' (host a gRPC server on ``port`` that viewers connect to), 'save' (write ``file``).
        url: viewer address for 'connect', e.g. ``rerun+http://127.0.0.1:9876/proxy``.
        file: recording for 'save' (and for the fallback); None = ``<out>/run.rrd``.
        port: port of the spawned viewer ('spawn') or of the served gRPC endpoint ('serve').
        web_port: with 'serve', also host the web viewer on this port; None = don't.
        fallback: what 'spawn'/'connect' do when no viewer can be reached: 'save' to ``file``, or 'off'.
        map_every: refresh ``/world/map`` at most every this many frames (and when the map changed).
        map_max_points: the logged map is randomly thinned to at most this many points.
        image_scale: the camera image/depth/confidence are logged at this fraction of their size.
        frustum_size: image-plane distance of the drawn keyframe frusta (map units).
        trajectory_chunk: the live trajectory is logged as strips of at most this many poses (each frame
            re-logs only its current strip, so the cost per frame is bounded).
        budget_ms: target mean logging time per frame (CPU time of the calling thread, ms); above it images,
            depth and the map are logged on fewer frames (poses and scalars are always logged).
        ate_every: with ground truth, log the live ATE (``/metrics/ate_live``) every this many frames; 0 = never.
        log_mesh: log the TSDF mesh to ``/world/mesh`` at the end of the run.
        application_id: Rerun application id (viewers group recordings by it).
        server_memory_limit: memory the 'serve' gRPC server may use to buffer data for late viewers.
        watchdog_s: seconds between reachability checks of the viewer in 'spawn'/'connect' mode; when the
            viewer is gone, live logging stops (0 disables the check).
    """

    mode: str = "off"
    url: str = "rerun+http://127.0.0.1:9876/proxy"
    file: str | None = None
    port: int = 9876
    web_port: int | None = None
    fallback: str = "save"
    map_every: int = 10
    map_max_points: int = 200_000
    image_scale: float = 0.5
    frustum_size: float = 0.1
    trajectory_chunk: int = 64
    budget_ms: float = 15.0
    ate_every: int = 10
    log_mesh: bool = True
    application_id: str = "ttsa-slam"
    server_memory_limit: str = "1GiB"
    watchdog_s: float = 2.0

    def validate(self) -> None:
        if self.mode not in VIZ_MODES:
            raise ValueError(f"viz.mode: expected one of {', '.join(VIZ_MODES)}, got {self.mode!r}")
        if self.fallback not in VIZ_FALLBACKS:
            raise ValueError(f"viz.fallback: expected one of {', '.join(VIZ_FALLBACKS)}, got {self.fallback!r}")
        if self.mode == "connect" and "://" not in self.url:
            raise ValueError(f"viz.url: expected a viewer URL like rerun+http://HOST:PORT/proxy, got {self.url!r}")
        if self.file is not None and not str(self.file).endswith(".rrd"):
            raise ValueError(f"viz.file: must end in .rrd, got {self.file!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"viz.port: must be a TCP port, got {self.port}")
        if self.web_port is not None and not 0 < self.web_port < 65536:
            raise ValueError(f"viz.web_port: must be a TCP port, got {self.web_port}")
        if self.map_every < 1:
            raise ValueError(f"viz.map_every: must be >= 1, got {self.map_every}")
        if self.map_max_points < 1:
            raise ValueError(f"viz.map_max_points: must be >= 1, got {self.map_max_points}")
        if not 0.0 < self.image_scale <= 1.0:
            raise ValueError(f"viz.image_scale: must be in (0, 1], got {self.image_scale}")
        _positive("viz.frustum_size", self.frustum_size)
        if self.trajectory_chunk < 2:
            raise ValueError(f"viz.trajectory_chunk: must be >= 2, got {self.trajectory_chunk}")
        _positive("viz.budget_ms", self.budget_ms)
        if self.ate_every < 0:
            raise ValueError(f"viz.ate_every: must be >= 0, got {self.ate_every}")
        if self.watchdog_s < 0:
            raise ValueError(f"viz.watchdog_s: must be >= 0, got {self.watchdog_s}")


def _positive(key: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{key}: must be > 0, got {value}")
