"""Reading a saved ``.rrd`` back (for tests and checks), with Rerun's own chunk reader (``rerun.chunk``).

Each logged row becomes a dict ``{'frame': int | None, 'time': float | None, '<Archetype>:<field>': list}``;
rows are grouped by entity path and sorted by frame. Rerun stores 3x3 matrices column-major;
:func:`transform_matrix` turns a ``Transform3D`` row back into a 4x4 matrix.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rerun.chunk import RrdReader

_CONTROL_COLUMNS = ("rerun.controls.RowId", "log_time")


@dataclass
class RrdContents:
    """Rows of one recording in an ``.rrd`` file.

    Attributes:
        rows: entity path -> rows sorted by frame (static rows first, with frame None).
        blueprints: number of blueprint stores in the file (1 when a default layout was saved).
    """

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    blueprints: int = 0

    @property
    def paths(self) -> set[str]:
        return set(self.rows)

    def under(self, prefix: str) -> list[str]:
        """Entity paths at or below ``prefix``, sorted."""
        return sorted(p for p in self.rows if p == prefix or p.startswith(prefix.rstrip("/") + "/"))

    def with_component(self, path: str, component: str) -> list[dict[str, Any]]:
        """Rows of ``path`` that carry ``component`` (e.g. ``'Transform3D:translation'``)."""
        return [r for r in self.rows.get(path, []) if r.get(component) is not None]

    def latest(self, path: str, component: str, frame: int) -> Any:
        """Latest value of ``component`` at ``path`` logged at or before ``frame`` (static counts as -inf)."""
        best = None
        for row in self.with_component(path, component):
            f = row.get("frame")
            if f is None or f <= frame:
                best = row[component]
        return best


def read_rrd(path: str | Path) -> RrdContents:
    """Load the first recording of an ``.rrd`` file into memory (small files: tests, checks)."""
    reader = RrdReader(path)
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for chunk in reader.stream():
        for row in chunk.to_record_batch().to_pylist():
            item = {k: v for k, v in row.items() if k not in _CONTROL_COLUMNS}
            item["frame"] = row.get("frame")
            t = row.get("time")
            item["time"] = None if t is None else t.total_seconds() if hasattr(t, "total_seconds") else float(t)
            out[chunk.entity_path].append(item)
    for rows in out.values():
        rows.sort(key=lambda r: -1 if r["frame"] is None else r["frame"])
    return RrdContents(dict(out), len(reader.blueprints()))


def transform_matrix(row_or_values: dict[str, Any]) -> np.ndarray:
    """4x4 matrix of a logged ``Transform3D`` (``mat3x3`` column-major + ``translation``)."""
    T = np.eye(4)
    mat = row_or_values.get("Transform3D:mat3x3")
    if mat is not None:
        T[:3, :3] = np.asarray(mat[0], dtype=np.float64).reshape(3, 3).T
    trans = row_or_values.get("Transform3D:translation")
    if trans is not None:
        T[:3, 3] = np.asarray(trans[0], dtype=np.float64)
    return T
