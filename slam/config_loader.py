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


class _IntText(int):
    """An int read from YAML that remembers its source text (``00`` stays ``"00"`` for a string field)."""

    text: str


class _FloatText(float):
    """A float read from YAML that remembers its source text (``1.10`` stays ``"1.10"`` for a string field)."""

    text: str


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose numbers remember their text; :func:`convert` turns them into plain values."""


def _construct_number(kind):
    base = yaml.SafeLoader.construct_yaml_int if kind is _IntText else yaml.SafeLoader.construct_yaml_float

    def construct(loader, node):
        value = kind(base(loader, node))
        value.text = node.value
        return value

    return construct


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_number(_IntText))
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_number(_FloatText))


def load_yaml_text(text: str) -> Any:
    """``yaml.safe_load`` whose numbers remember their source text (no object construction, no code)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader subclass


def plain(value: Any) -> Any:
    """``value`` with the number subclasses of :func:`load_yaml_text` turned into int/float (recursively)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    return value


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with ``yaml.safe_load``; errors name the file and the YAML problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file not found", path)
    try:
        data = load_yaml_text(path.read_text(encoding="utf-8-sig"))
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
        value = load_yaml_text(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


#: YAML 1.1 reads these as booleans; on the command line they are kept as words (``viz=off``).
_YAML11_WORDS = {"on", "off", "yes", "no", "y", "n"}
_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
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


@dataclasses.dataclass(frozen=True)
class Range:
    """Allowed values of a numeric config field (None = no bound); checked by :func:`build` at load time."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is out of range, or None when it is fine (None values are not checked)."""
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        for bound, ok, text in ((self.ge, lambda b: value >= b, ">="), (self.gt, lambda b: value > b, ">"),
                                (self.le, lambda b: value <= b, "<="), (self.lt, lambda b: value < b, "<")):
            if bound is not None and not ok(bound):
                return f"must be {text} {bound:g}, got {value!r}"
        return None


def require(obj: Any, **bounds: dict[str, float]) -> None:
    """Range checks for ``validate()`` methods: ``require(self, stride={"ge": 1}, huber={"gt": 0})``.

    Raises:
        ValueError starting with the field name, e.g. ``"stride must be >= 1, got 0"`` (the loader turns it
        into an error naming the dotted key and where it was set).
    """
    for name, kw in bounds.items():
        problem = Range(**kw).problem(getattr(obj, name))
        if problem:
            raise ValueError(f"{name} {problem}")


def bounded(default: Any = dataclasses.MISSING, *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None, **field_kwargs: Any) -> Any:
    """A dataclass field with a range check, e.g. ``stride: int = bounded(1, ge=1)``."""
    metadata = {**field_kwargs.pop("metadata", {}), "range": Range(ge=ge, gt=gt, le=le, lt=lt)}
    return dataclasses.field(default=default, metadata=metadata, **field_kwargs)


def _check_ranges(obj: Any, origins: Origins, prefix: str) -> None:
    for f in dataclasses.fields(obj):
        rng = f.metadata.get("range")
        problem = rng.problem(getattr(obj, f.name)) if rng is not None else None
        if problem:
            raise _error(origins, f"{prefix}{f.name}", f"'{prefix}{f.name}' {problem}")


def _validation_error(exc: ValueError, fields: list[str], origins: Origins, prefix: str,
                      given: Any = ()) -> ConfigError:
    """A ``validate()`` message turned into a one-line error naming the key it is about: the first field the
    message names, preferring keys given in this section's data (those are what a layer set)."""
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    section = prefix.rstrip(".")
    named = [(m.start(), m.group(1)) for name in fields
             for m in re.finditer(rf"(?<![\w.])(?:{re.escape(prefix)})?({re.escape(name)})(?![\w])", message)]
    if not named:
        return _error(origins, section, f"invalid value in '{section or 'root'}': {message}")
    _, name = min(named, key=lambda item: (item[1] not in given, item[0]))
    dotted = f"{prefix}{name}"
    for lead in (f"{dotted}:", dotted, f"{name}:", name):
        if message.startswith(lead):
            message = (":" if lead.endswith(":") else "") + " " + message[len(lead):].lstrip()
            break
    else:
        message = f": invalid value: {message}"
    return _error(origins, dotted, f"'{dotted}'{message}")


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
        raise _validation_error(exc, list(known), origins, prefix, set(data)) from None
    _check_ranges(obj, origins, prefix)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except (TypeError, ValueError) as exc:
            raise _validation_error(exc, list(known), origins, prefix, set(data)) from None
    return obj


def convert(tp: Any, value: Any, origins: Origins, dotted: str) -> Any:
    """Check/convert ``value`` against type annotation ``tp`` (dataclasses, Optional, list, tuple, dict, scalars)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return plain(value)
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
        return plain(dict(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
            return value.strip().lower() in _TRUE_WORDS
        raise _error(origins, dotted, f"'{dotted}' must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
        raise _error(origins, dotted, f"'{dotted}' must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isnan(value):
                raise _error(origins, dotted, f"'{dotted}' must be a number, got nan")
            return float(value)
        if isinstance(value, str) and value.strip().lower() in {"inf", "+inf", "-inf", ".inf", "-.inf"}:
            return math.inf if "-" not in value else -math.inf
        if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-9 (no dot) as a string
        raise _error(origins, dotted, f"'{dotted}' must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "on" if value else "off"  # YAML 1.1 reads an unquoted off/on as a boolean
        if isinstance(value, (int, float)):
            return getattr(value, "text", str(value))  # e.g. KITTI sequence 00 written unquoted stays "00"
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
    return plain(obj)
