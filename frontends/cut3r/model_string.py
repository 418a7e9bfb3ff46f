"""Parse and write the official CUT3R model string without ``eval``.

Official checkpoints store the architecture as Python source, e.g.::

    ARCroco3DStereo(ARCroco3DStereoConfig(state_size=768, head_type='dpt', depth_mode=('exp', -inf, inf), ...))

The official loader ``eval``s it. Here it is parsed with :mod:`ast` and every keyword value goes through a
tiny literal evaluator (constants, tuples/lists, unary minus, the bare name ``inf``), so nothing from a
checkpoint is ever executed. The official loader's two rewrites are applied to the parsed result:
``patch_embed_cls='ManyAR_PatchEmbed'`` becomes
``'PatchEmbedDust3R'`` and ``landscape_only`` is forced to False.
"""

from __future__ import annotations

import ast
import math
from dataclasses import fields
from typing import Any

from frontends.cut3r.config import Cut3rNetConfig
from slam.errors import CheckpointError

OUTER_CALL = "ARCroco3DStereo"
INNER_CALL = "ARCroco3DStereoConfig"

#: Keywords accepted in a model string but without effect on the network. TTT3R adds
#: ``model_update_type`` to the config, but the official code never reads it (the update rule is a
#: runtime option).
IGNORED_FIELDS = frozenset({"model_update_type"})

_BARE_NAMES = {"inf": math.inf}


def _literal(node: ast.AST, field: str, source: str | None) -> Any:
    """Evaluate a literal expression node: constants, tuples/lists, unary +/-, ``inf``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_literal(elt, field, source) for elt in node.elts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand, field, source)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CheckpointError(f"model string: field {field!r} negates a non-number", source)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Name) and node.id in _BARE_NAMES:
        return _BARE_NAMES[node.id]
    raise CheckpointError(
        f"model string: field {field!r} is not a literal (got {ast.dump(node)[:80]})", source
    )


def _check_type(field: str, value: Any, default: Any, source: str | None) -> Any:
    """Coerce ``value`` to the type of the field's default, or raise naming the field."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, tuple):
        ok = isinstance(value, tuple)
        if not ok and isinstance(value, int) and not isinstance(value, bool) and field == "img_size":
            value, ok = (value, value), True  # CroCo accepts a single int image size
    elif isinstance(default, str):
        ok = isinstance(value, str)
    else:  # pragma: no cover - every field has a typed default
        ok = True
    if not ok:
        raise CheckpointError(
            f"model string: field {field!r} has value {value!r}, expected {type(default).__name__}", source
        )
    return value


def _call_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id
    return None


def parse_model_string(text: str, source: str | None = None) -> Cut3rNetConfig:
    """Parse ``ARCroco3DStereo(ARCroco3DStereoConfig(k=v, ...))`` into a :class:`Cut3rNetConfig`.

    Args:
        text: the model string as stored in a checkpoint (any whitespace, also multi-line).
        source: file the string came from, used in error messages.

    Raises:
        CheckpointError: the text is not that call form, a value is not a literal, a field is unknown
            or has the wrong type, or ``landscape_only``/the head settings are unsupported.
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise CheckpointError(f"model string is not valid Python syntax ({exc.msg})", source) from None
    outer = tree.body
    if _call_name(outer) != OUTER_CALL:
        raise CheckpointError(f"model string must be a call of {OUTER_CALL}(...), got {text[:60]!r}", source)
    if outer.keywords or len(outer.args) != 1 or _call_name(outer.args[0]) != INNER_CALL:
        raise CheckpointError(f"model string must be {OUTER_CALL}({INNER_CALL}(...))", source)
    inner = outer.args[0]
    if inner.args:
        raise CheckpointError(f"model string: {INNER_CALL} takes keyword arguments only", source)

    defaults = {f.name: f.default for f in fields(Cut3rNetConfig)}
    values: dict[str, Any] = {}
    for kw in inner.keywords:
        if kw.arg is None:
            raise CheckpointError("model string: '**' expansion is not allowed", source)
        if kw.arg in values:
            raise CheckpointError(f"model string: field {kw.arg!r} is given twice", source)
        value = _literal(kw.value, kw.arg, source)
        if kw.arg in IGNORED_FIELDS:
            continue
        if kw.arg not in defaults:
            raise CheckpointError(f"model string: unknown field {kw.arg!r}", source)
        values[kw.arg] = _check_type(kw.arg, value, defaults[kw.arg], source)

    # The official loader's rewrites.
    if values.get("patch_embed_cls") == "ManyAR_PatchEmbed":
        values["patch_embed_cls"] = "PatchEmbedDust3R"
    values["landscape_only"] = False
    config = Cut3rNetConfig(**values)
    _validate(config, source)
    return config


def _validate(config: Cut3rNetConfig, source: str | None) -> None:
    """Reject settings this implementation (and the official inference path) does not support."""
    if config.head_type not in ("linear", "dpt"):
        raise CheckpointError(f"model string: field 'head_type' must be 'linear' or 'dpt', got {config.head_type!r}", source)
    if config.patch_embed_cls != "PatchEmbedDust3R":
        raise CheckpointError(f"model string: unsupported 'patch_embed_cls' {config.patch_embed_cls!r}", source)
    for name in ("depth_mode", "pose_mode"):
        mode = getattr(config, name)
        if len(mode) != 3 or mode[0] != "exp" or mode[1] != -math.inf or mode[2] != math.inf:
            raise CheckpointError(f"model string: field {name!r} must be ('exp', -inf, inf), got {mode!r}", source)
    if len(config.conf_mode) != 3 or config.conf_mode[0] != "exp":
        raise CheckpointError(f"model string: field 'conf_mode' must be ('exp', vmin, vmax), got {config.conf_mode!r}", source)


def _format_value(value: Any) -> str:
    if isinstance(value, tuple):
        inner = ", ".join(_format_value(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)


def format_model_string(config: Cut3rNetConfig) -> str:
    """The official-style model string for ``config``: the fields that differ from the defaults, in field
    order, plus an explicit ``landscape_only=False`` (whose official default is True).

    ``parse_model_string(format_model_string(c)) == c`` for every config the parser accepts.
    """
    defaults = Cut3rNetConfig()
    parts = [
        f"{f.name}={_format_value(getattr(config, f.name))}"
        for f in fields(config)
        if getattr(config, f.name) != getattr(defaults, f.name) or f.name == "landscape_only"
    ]
    return f"{OUTER_CALL}({INNER_CALL}({', '.join(parts)}))"
