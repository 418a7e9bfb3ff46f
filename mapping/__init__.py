"""Map fusion, map/mesh export and the live Rerun viewer, as pipeline sinks.

The pipeline builds the sinks with :func:`build_sinks`: a :class:`~mapping.map_sink.MapSink` (keyframe point
map, TSDF for metric runs, ``map.ply`` / ``mesh.ply``), with ``mapping.gaussians.enabled`` a
:class:`~mapping.gaussians.sink.GaussianSink` (tttLRM Gaussian splats, ``gaussians.ply``) and, unless
``viz.mode`` is 'off', a :class:`~mapping.rerun_sink.RerunSink` that displays the run and shares the map sink's
keyframe map.

Importing this package is cheap (only the config dataclasses); Open3D, Rerun and torch load on first use.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mapping.config import GaussiansConfig, MappingConfig, TsdfConfig, VizConfig
from slam.errors import ConfigError

if TYPE_CHECKING:
    from slam.sinks import Sink

__all__ = ["GaussiansConfig", "KeyframeMap", "MapSink", "MappingConfig", "RerunSink", "TsdfConfig", "TsdfMap",
           "VizConfig",
           "build_sinks"]

_LAZY = {"KeyframeMap": "mapping.keyframe_map", "MapSink": "mapping.map_sink", "RerunSink": "mapping.rerun_sink",
         "TsdfMap": "mapping.tsdf"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mapping' has no attribute {name!r}")


def build_sinks(mapping_cfg: MappingConfig | None, viz_cfg: VizConfig | None, out_dir: str | Path) -> list[Sink]:
    """The sinks of a run, in notification order: the map sink, the Gaussian sink, the Rerun sink (if enabled).

    The Gaussian sink precedes the Rerun sink so that its ``finish`` logs while the recording is still open.

    Args:
        mapping_cfg: map options (None = defaults).
        viz_cfg: viewer options (None = defaults, i.e. off).
        out_dir: output folder of the run (``map.ply``, ``mesh.ply``, ``run.rrd``).

    Raises:
        ConfigError: an invalid option (the message names the key), e.g. a missing Gaussian-map checkpoint.
        CheckpointError: a Gaussian-map checkpoint that cannot be loaded.
    """
    from mapping.map_sink import MapSink

    mapping_cfg = mapping_cfg or MappingConfig()
    viz_cfg = viz_cfg or VizConfig()
    for section in (mapping_cfg, viz_cfg):
        try:
            section.validate()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    map_sink = MapSink(mapping_cfg, out_dir)
    sinks: list[Sink] = [map_sink]
    rerun_sink = None
    if viz_cfg.mode != "off":
        from mapping.rerun_sink import RerunSink

        rerun_sink = RerunSink(viz_cfg, out_dir, keyframe_map=map_sink.map, mesh_source=map_sink.mesh)
    if mapping_cfg.gaussians.enabled:
        from mapping.gaussians.sink import GaussianSink

        sinks.append(GaussianSink(mapping_cfg.gaussians, out_dir, keyframe_map=map_sink.map, rerun=rerun_sink))
    if rerun_sink is not None:
        sinks.append(rerun_sink)
    return sinks
