"""The default Rerun layout of a SLAM run, and the entity paths the Rerun sink logs to."""

from __future__ import annotations

import rerun.blueprint as rrb

WORLD = "/world"
CAMERA = "/world/camera"
CAMERA_IMAGE = "/world/camera/image"
CAMERA_DEPTH = "/world/camera/depth"
CAMERA_CONFIDENCE = "/world/camera/confidence"
TRAJ_ESTIMATE = "/world/trajectory/estimate"
TRAJ_GROUNDTRUTH = "/world/trajectory/groundtruth"
TRAJ_KEYFRAMES = "/world/trajectory/keyframes"
TRAJ_FINAL = "/world/trajectory/final"
MAP = "/world/map"
MESH = "/world/mesh"
KEYFRAMES = "/world/keyframes"
LOOPS = "/world/loops"
METRICS = "/metrics"
FRONTEND = "/frontend"


def default_blueprint() -> rrb.Blueprint:
    """3D view of ``/world`` on the left; camera image, depth and confidence, then the time series on the right."""
    return rrb.Blueprint(
        rrb.Horizontal(
            rrb.Spatial3DView(
                origin=WORLD,
                contents=[f"+ {WORLD}/**", f"- {CAMERA_CONFIDENCE}"],
                name="3D",
            ),
            rrb.Vertical(
                rrb.Horizontal(
                    rrb.Spatial2DView(origin=CAMERA, contents=[CAMERA_IMAGE], name="camera"),
                    rrb.Spatial2DView(origin=CAMERA, contents=[CAMERA_DEPTH], name="depth"),
                    rrb.Spatial2DView(origin=CAMERA, contents=[CAMERA_CONFIDENCE], name="confidence"),
                ),
                rrb.TimeSeriesView(origin=METRICS, name="metrics"),
                rrb.TimeSeriesView(origin=FRONTEND, name="frontend"),
                row_shares=[2, 2, 1],
            ),
            column_shares=[3, 2],
        ),
        collapse_panels=False,
    )
