"""``slam config``: every configuration key with its value, type, default and source.

Rows come from walking the config dataclasses of a :class:`~slam.config.RunConfig`; the source of a value
is the layer that set it (a file under ``configs/``, the ``--config`` file, ``command line``) or
``default`` (the dataclass default).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from frontends.base import FRONTENDS
from slam.config import RunConfig, build_run_config, compose_layers
from slam.config_loader import Origins, to_plain


@dataclass(frozen=True)
class Row:
    """One configuration key: dotted name, value, type, dataclass default and where the value came from."""

    key: str
    value: Any
    type: str
    default: Any
    source: str


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "").replace("NoneType", "None")


def _rows(obj: Any, prefix: str, origins: Origins, defaults_only: bool) -> list[Row]:
    hints = typing.get_type_hints(type(obj))
    default = type(obj)()
    rows: list[Row] = []
    for f in dataclasses.fields(obj):
        if not f.init:
            continue
        key = f"{prefix}{f.name}"
        value, dflt = getattr(obj, f.name), getattr(default, f.name)
        if dataclasses.is_dataclass(value):
            rows.extend(_rows(value, key + ".", origins, defaults_only))
            continue
        source = "default" if defaults_only else origins.get(key, "default")
        rows.append(Row(key, to_plain(dflt if defaults_only else value), _type_name(hints[f.name]),
                        to_plain(dflt), source))
    return rows


def config_rows(cfg: RunConfig, origins: Origins, defaults_only: bool = False) -> list[Row]:
    """Rows for every key of ``cfg``; the ``frontend`` section lists ``name`` and the option section of every
    registered frontend (the chosen one's values as resolved, the others at their defaults)."""
    rows: list[Row] = []
    for section in ("dataset",):
        rows.extend(_rows(getattr(cfg, section), f"{section}.", origins, defaults_only))
    rows.append(Row("frontend.name", "rgbd" if defaults_only else cfg.frontend.name, "str", "rgbd",
                    "default" if defaults_only else origins.get("frontend.name", "default")))
    FRONTENDS.load_all()
    sections = {spec.section: spec.config_cls for spec in FRONTENDS.loaded().values()}
    for section, cls in sorted(sections.items()):
        obj = cls() if defaults_only else cfg.frontend.sections.get(section) or cls()
        rows.extend(_rows(obj, f"frontend.{section}.", origins, defaults_only))
    for section in ("backend", "mapping", "viz", "output"):
        rows.extend(_rows(getattr(cfg, section), f"{section}.", origins, defaults_only))
    return rows


def resolve_with_origins(config_file=None, data=None, overrides=()) -> tuple[RunConfig, Origins]:
    """The validated configuration of ``slam run`` with the same arguments, and its origins."""
    merged, origins = compose_layers(config_file, data, None, overrides)
    return build_run_config(merged, origins), origins


def format_rows(rows: list[Row]) -> str:
    """Aligned text table: ``key  value  type  default  source``."""
    table = [("key", "value", "type", "default", "source")]
    table += [(r.key, _show(r.value), r.type, _show(r.default), r.source) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4]
                     for row in table)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
