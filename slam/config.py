"""The run configuration: typed dataclasses composed from layered YAML files.

Layers, later ones win:
    ``configs/default.yaml`` <- ``configs/datasets/<kind>.yaml`` <- ``configs/frontends/<name>.yaml``
    <- the user's ``--config`` file <- command-line ``key=value`` overrides.

The dataset kind is detected from the data path (or set by ``dataset.kind``) and the frontend name comes
from the highest layer that sets ``frontend.name``, so that ``slam run --data X frontend.name=rgbd`` picks
``configs/frontends/rgbd.yaml`` automatically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from backends.config import BackendConfig
from frontends.base import FRONTENDS, frontend_config_class
from mapping.config import MappingConfig, VizConfig
from slam.atomic import write_text_atomic
from slam.config_loader import Origins, bounded, build, merge, nest, origin_of, parse_override, read_yaml, to_plain
from slam.datasets import detect_kind
from slam.datasets.base import DatasetConfig
from slam.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
CLI_SOURCE = "command line"

#: Section-level shorthands accepted on the command line: ``viz=save`` means ``viz.mode=save``.
SHORTHANDS = {"viz": "mode", "frontend": "name", "backend": "preset"}


@dataclass
class OutputConfig:
    """Where and what to write.

    Attributes:
        dir: output folder (created).
        kitti: also write ``trajectory.kitti``; None = only for KITTI input.
        flush_every: rewrite ``trajectory.tum`` every N frames during the run (0 = not by frame count).
        flush_seconds: also rewrite it when this many seconds passed since the last write (0 = not by time),
            so that a killed run (SIGKILL, power loss) loses at most this much work.
    """

    dir: str = "outputs/run"
    kitti: bool | None = None
    flush_every: int = bounded(50, ge=0)
    flush_seconds: float = bounded(30.0, ge=0)


@dataclass
class FrontendConfig:
    """``frontend:`` section: the chosen frontend's name and typed option sections.

    ``sections`` maps a section name (``rgbd``, ``cut3r`` (shared by cut3r/ttt3r/ttsa3r) ...) to the
    frontend's config dataclass instance.
    """

    name: str = "rgbd"
    sections: dict[str, Any] = field(default_factory=dict)

    def options(self) -> Any:
        """The config object of the chosen frontend (its defaults if the section was not given)."""
        spec = FRONTENDS.get(self.name)
        return self.sections.get(spec.section) or spec.config_cls()


@dataclass
class RunConfig:
    """The whole resolved configuration of one run."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    mapping: MappingConfig = field(default_factory=MappingConfig)
    viz: VizConfig = field(default_factory=VizConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def to_dict(self, absolute_paths: bool = False) -> dict[str, Any]:
        """Plain nested dict of every value. With ``absolute_paths``, string values of path-like keys
        (``path``, ``dir``, ``checkpoint``, ``*_path``, ``*_dir``, ``*_file``) that name an existing file or
        folder relative to the working directory are made absolute, so the dict reproduces the run from any
        folder."""
        data = to_plain(self)
        frontend = {"name": self.frontend.name}
        frontend.update({name: to_plain(sec) for name, sec in self.frontend.sections.items()})
        data["frontend"] = frontend
        return _absolute_paths(data) if absolute_paths else data


_PATH_KEYS = ("path", "dir", "checkpoint")
_PATH_SUFFIXES = ("_path", "_dir", "_file")


def _absolute_paths(node: Any, key: str = "") -> Any:
    if isinstance(node, dict):
        return {k: _absolute_paths(v, k) for k, v in node.items()}
    if (isinstance(node, str) and node and (key in _PATH_KEYS or key.endswith(_PATH_SUFFIXES))
            and not Path(node).is_absolute() and Path(node).exists()):
        return str(Path(node).resolve())
    return node


def _section_classes() -> dict[str, type]:
    return {"dataset": DatasetConfig, "backend": BackendConfig, "mapping": MappingConfig, "viz": VizConfig,
            "output": OutputConfig}


def _build_frontend(data: Any, origins: Origins) -> FrontendConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"'frontend' must be a mapping, got {data!r}", origin_of(origins, "frontend"))
    data = dict(data)
    name = data.pop("name", "rgbd")
    if not isinstance(name, str) or name not in FRONTENDS:
        known = ", ".join(FRONTENDS.names())
        raise ConfigError(f"unknown frontend '{name}' (known: {known})", origin_of(origins, "frontend.name"))
    sections = {}
    for section, values in data.items():
        cls = frontend_config_class(section)
        if cls is None:
            raise ConfigError(f"unknown config key 'frontend.{section}' (no frontend uses a '{section}' section)",
                              origin_of(origins, f"frontend.{section}"))
        sections[section] = build(cls, values if values is not None else {}, origins, f"frontend.{section}.")
    return FrontendConfig(name=name, sections=sections)


def expand_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    """Parse ``key=value`` strings, expanding section shorthands (``viz=save`` -> ``viz.mode=save``)."""
    out = []
    for text in overrides:
        key, value = parse_override(text)
        if key in SHORTHANDS and not isinstance(value, dict):
            key = f"{key}.{SHORTHANDS[key]}"
        out.append((key, value))
    return out


def load_run_config(
    config_file: str | Path | None = None,
    data: str | Path | None = None,
    out: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    config_dir: Path = CONFIG_DIR,
) -> RunConfig:
    """Compose and validate the run configuration (see the module docstring for the layer order)."""
    return build_run_config(*compose_layers(config_file, data, out, overrides, config_dir))


def compose_layers(
    config_file: str | Path | None = None,
    data: str | Path | None = None,
    out: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    config_dir: Path = CONFIG_DIR,
) -> tuple[dict[str, Any], Origins]:
    """The merged layers as a nested dict and, per dotted key, where its value was set (not validated)."""
    parsed = expand_overrides(list(overrides))
    user = read_yaml(config_file) if config_file else {}
    cli: dict[str, Any] = {}
    cli_origins: Origins = {}
    for key, value in parsed:
        merge(cli, nest(key, value), cli_origins, CLI_SOURCE)
    if data is not None:
        merge(cli, {"dataset": {"path": str(data)}}, cli_origins, CLI_SOURCE)
    if out is not None:
        merge(cli, {"output": {"dir": str(out)}}, cli_origins, CLI_SOURCE)

    def pick(key: str, default: Any) -> Any:
        for layer in (cli, user):
            node: Any = layer
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node is not None:
                return node
        return default

    merged: dict[str, Any] = {}
    origins: Origins = {}
    default_file = config_dir / "default.yaml"
    merge(merged, read_yaml(default_file), origins, str(default_file))

    kind = pick("dataset.kind", merged.get("dataset", {}).get("kind", "auto"))
    path = pick("dataset.path", "")
    if kind == "auto" and path:
        kind = detect_kind(Path(str(path)))
    dataset_file = config_dir / "datasets" / f"{kind}.yaml"
    if dataset_file.is_file():
        merge(merged, read_yaml(dataset_file), origins, str(dataset_file))

    name = pick("frontend.name", merged.get("frontend", {}).get("name", "rgbd"))
    frontend_file = _frontend_file(config_dir, name)
    if frontend_file is not None:
        merge(merged, read_yaml(frontend_file), origins, str(frontend_file))

    if user:
        merge(merged, user, origins, str(config_file))
    merge(merged, cli, origins, CLI_SOURCE)
    if kind != "auto":
        merged.setdefault("dataset", {})["kind"] = kind
        origins.setdefault("dataset.kind", "detected from dataset.path")
    return merged, origins


def _frontend_file(config_dir: Path, name: Any) -> Path | None:
    """``configs/frontends/<name>.yaml``, else the file of the frontend's config section (e.g. ``cut3r.yaml``
    for cut3r/ttt3r/ttsa3r), else None (a plug-in's options default to its config dataclass)."""
    if not isinstance(name, str):
        return None
    candidates = [config_dir / "frontends" / f"{name}.yaml"]
    if name in FRONTENDS:
        candidates.append(config_dir / "frontends" / f"{FRONTENDS.get(name).section}.yaml")
    return next((path for path in candidates if path.is_file()), None)


def build_run_config(merged: dict[str, Any], origins: Origins) -> RunConfig:
    """Validate a merged dict into a :class:`RunConfig`; unknown sections/keys raise ConfigError."""
    classes = _section_classes()
    values: dict[str, Any] = {}
    for section, data in merged.items():
        if section == "frontend":
            values["frontend"] = _build_frontend(data if data is not None else {}, origins)
        elif section in classes:
            values[section] = build(classes[section], data if data is not None else {}, origins, f"{section}.")
        else:
            valid = ", ".join(sorted([*classes, "frontend"]))
            raise ConfigError(f"unknown config key '{section}' (valid sections: {valid})",
                              origin_of(origins, section))
    for section, cls in classes.items():
        values.setdefault(section, cls())
    values.setdefault("frontend", FrontendConfig())
    return RunConfig(**values)


def write_run_yaml(cfg: RunConfig, path: Path) -> None:
    """Write the resolved configuration (``run.yaml``) so that ``slam run --config run.yaml`` reproduces the run
    from any folder (relative data, output and checkpoint paths are written as absolute paths)."""
    text = yaml.safe_dump(cfg.to_dict(absolute_paths=True), sort_keys=False, default_flow_style=None)
    write_text_atomic(path, "# resolved configuration of this run (slam run --config run.yaml reproduces it)\n" + text)
