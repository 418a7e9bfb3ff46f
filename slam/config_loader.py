"""Typed configuration from layered YAML: parsing, merging with provenance, and dataclass validation.

Layers are plain nested dicts merged left to right; every leaf remembers the file (or ``command line``) it
came from so that a validation error can name both the bad key and where it was set. Only
``yaml.safe_load`` is used: configuration is data, never code.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Union

import yaml

from slam.errors import ConfigError

#: dotted key -> where its value was set ("configs/default.yaml", "command line", ...)
Origins = dict[str, str]


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with ``yaml.safe_load``; errors name the file and the YAML problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file not found", path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"invalid YAML{where}: {problem}", path) from None
    except UnicodeDecodeError:
        raise ConfigError("not a text file", path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping of keys at the top level, got {type(data).__name__}", path)
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one ``key.sub=value`` command-line override; the value is read as a YAML scalar/list."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"bad override {text!r}: expected key=value, e.g. frontend.name=rgbd", "command line")
    if raw.strip().lower() in _YAML11_WORDS:
        return key, raw.strip()  # keep on/off/yes/no as words; bool fields accept them below
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


#: YAML 1.1 reads these as booleans; on the command line they are kept as words (``viz=off``).
_YAML11_WORDS = {"on", "off", "yes", "no", "y", "n"}
_TRUE_WORDS = {"true", "on", "yes", "y", "1"}
_FALSE_WORDS = {"false", "off", "no", "n", "0"}


def nest(dotted: str, value: Any) -> dict[str, Any]:
    """``nest("a.b", 1) == {"a": {"b": 1}}``."""
    out: Any = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return out


def merge(base: dict[str, Any], layer: dict[str, Any], origins: Origins, source: str, prefix: str = "") -> None:
    """Deep-merge ``layer`` into ``base`` in place, recording each leaf's origin."""
    for key, value in layer.items():
        if not isinstance(key, str):
            raise ConfigError(f"keys must be strings, got {key!r}", source)
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value, origins, source, dotted + ".")
        else:
            base[key] = _copy(value)
            _forget(origins, dotted)
            _record(origins, dotted, value, source)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _forget(origins: Origins, dotted: str) -> None:
    for key in [k for k in origins if k == dotted or k.startswith(dotted + ".")]:
        del origins[key]


def _record(origins: Origins, dotted: str, value: Any, source: str) -> None:
    origins[dotted] = source
    if isinstance(value, dict):
        for key, sub in value.items():
            _record(origins, f"{dotted}.{key}", sub, source)


def origin_of(origins: Origins, dotted: str) -> str | None:
    """Where ``dotted`` (or its closest parent) was set."""
    key = dotted
    while key:
        if key in origins:
            return origins[key]
        key = key.rpartition(".")[0]
    return None


# ---------------------------------------------------------------------------------------------------------
# dataclass construction with validation


def build(cls: type, data: Any, origins: Origins, prefix: str = "") -> Any:
    """Instantiate dataclass ``cls`` from nested dict ``data``, checking keys and types.

    Raises:
        ConfigError naming the dotted key, the problem and the file it came from.
    """
    if not isinstance(data, dict):
        raise _error(origins, prefix, f"expected a mapping for section '{prefix.rstrip('.')}', got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in known:
            close = ", ".join(sorted(known))
            raise _error(origins, dotted, f"unknown config key '{dotted}' (valid keys here: {close})")
        kwargs[key] = convert(hints[key], value, origins, dotted)
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise _error(origins, prefix.rstrip("."), f"invalid section '{prefix.rstrip('.') or 'root'}': {exc}") from None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as exc:
            section = prefix.rstrip(".")
            raise _error(origins, _blamed_key(prefix, data, str(exc)) or section,
                         f"invalid value in '{section or 'root'}': {exc}") from None
    return obj


def _blamed_key(prefix: str, data: dict[str, Any], message: str) -> str | None:
    """The dotted key a section's validation message is about: the first key given in ``data`` whose name
    the message mentions as a word (e.g. ``downsample must be >= 1``), else None (blame the section)."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", message))
    for key in data:
        if key in words:
            return f"{prefix}{key}"
    return None


def convert(tp: Any, value: Any, origins: Origins, dotted: str) -> Any:
    """Check/convert ``value`` against type annotation ``tp`` (dataclasses, Optional, list, tuple, dict, scalars)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return convert(option, value, origins, dotted)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if dataclasses.is_dataclass(tp):
        return build(tp, value, origins, dotted + ".")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _error(origins, dotted, f"'{dotted}' must be a list, got {value!r}")
        item = args[0] if args else Any
        items = [convert(item, v, origins, f"{dotted}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _error(origins, dotted, f"'{dotted}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
            return value.strip().lower() in _TRUE_WORDS
        raise _error(origins, dotted, f"'{dotted}' must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _error(origins, dotted, f"'{dotted}' must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and value.strip().lower() in {"inf", "+inf", "-inf", ".inf", "-.inf"}:
            return math.inf if "-" not in value else -math.inf
        raise _error(origins, dotted, f"'{dotted}' must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "on" if value else "off"  # YAML 1.1 reads an unquoted off/on as a boolean
        if isinstance(value, (int, float)):
            return str(value)  # e.g. KITTI sequence 00 written unquoted
        raise _error(origins, dotted, f"'{dotted}' must be a string, got {value!r}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _error(origins, dotted, f"'{dotted}' has an unsupported value {value!r}")


def _error(origins: Origins, dotted: str, message: str) -> ConfigError:
    return ConfigError(message, origin_of(origins, dotted) or "configuration")


def to_plain(obj: Any) -> Any:
    """Dataclasses/tuples -> plain dicts/lists for ``yaml.safe_dump``."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
