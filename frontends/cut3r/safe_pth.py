"""Read official ``.pth`` checkpoints without executing pickled code and without importing omegaconf.

The released CUT3R checkpoints were written by a Hydra program, so ``ckpt['args']`` is a pickled OmegaConf
``DictConfig``; older or hand-made files hold an ``argparse.Namespace``. Both are read with
``torch.load(weights_only=True)``, PyTorch's restricted unpickler, after allow-listing:

* inert stand-in classes for every ``omegaconf.*`` global the file names (they only store their pickled
  state: a stubbed ``DictConfig`` keeps ``_content``/``_metadata``/``_parent``, a leaf node keeps ``_val``);
* ``argparse.Namespace`` and the few builtins/typing/collections names an OmegaConf pickle uses.

The globals are listed *before* unpickling with ``torch.serialization.get_unsafe_globals_in_checkpoint``
(a static scan of the pickle opcodes); a file that names anything else is refused with a
:class:`~slam.errors.CheckpointError` naming the file and the global. The restricted unpickler is the
second line of defence: it refuses any global that is not allow-listed even if the scan missed it.
"""

from __future__ import annotations

import argparse
import collections
import functools
import pickle
import re
import typing
import zipfile
from pathlib import Path
from typing import Any

import torch

from slam.errors import CheckpointError

#: Module prefix whose globals are replaced by inert stubs.
STUB_PREFIX = "omegaconf."

#: Non-omegaconf globals an official checkpoint may need, mapped to the real objects.
#: None of them can do harm when called by the unpickler.
ALLOWED_GLOBALS: dict[str, Any] = {
    "argparse.Namespace": argparse.Namespace,
    "typing.Any": typing.Any,
    "collections.defaultdict": collections.defaultdict,
    "collections.OrderedDict": collections.OrderedDict,
    "builtins.dict": dict,
    "builtins.list": list,
    "builtins.tuple": tuple,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "builtins.int": int,
    "builtins.float": float,
    "builtins.str": str,
    "builtins.bool": bool,
    "builtins.bytes": bytes,
}


class OmegaConfStub:
    """Inert stand-in for an OmegaConf class: it records what the pickle gives it and nothing else."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # called by REDUCE (e.g. enum members)
        self._args = args
        self._kwargs = kwargs

    def __setstate__(self, state: Any) -> None:  # called by BUILD
        slots = None
        if isinstance(state, tuple) and len(state) == 2 and (state[1] is None or isinstance(state[1], dict)):
            state, slots = state
        if isinstance(state, dict):
            self.__dict__.update(state)
        elif state is not None:
            self.__dict__["_state"] = state
        if slots:
            self.__dict__.update(slots)

    def __repr__(self) -> str:
        return f"<stub {type(self).__module__}.{type(self).__qualname__}>"


@functools.lru_cache(maxsize=None)
def stub_class(full_name: str) -> type:
    """The (cached) stub class standing in for the global ``full_name`` (e.g. ``omegaconf.nodes.AnyNode``)."""
    module, _, qualname = full_name.rpartition(".")
    return type(qualname, (OmegaConfStub,), {"__module__": module, "__qualname__": qualname})


def _unsafe_globals(path: Path) -> list[str]:
    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except (ValueError, RuntimeError, KeyError, EOFError, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"cannot read the pickle inside the torch checkpoint ({exc})", path) from None


def safe_torch_load(path: str | Path) -> Any:
    """``torch.load`` a zip-format checkpoint on the CPU, executing no pickled code.

    Raises:
        CheckpointError: missing file, not a torch zip archive, truncated/corrupt archive, or a pickle that
            names a global outside the allow-list (the message names the file and the global).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint file not found", path)
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            "not a PyTorch zip checkpoint (truncated, corrupt, or saved in the legacy non-zip format)", path
        )
    allow: list[Any] = []
    refused: list[str] = []
    for name in _unsafe_globals(path):
        if name.startswith(STUB_PREFIX):
            allow.append(stub_class(name))
        elif name in ALLOWED_GLOBALS:
            allow.append((ALLOWED_GLOBALS[name], name))
        else:
            refused.append(name)
    if refused:
        raise CheckpointError(
            f"refusing to load: the pickle references the global(s) {', '.join(refused)}, which are not "
            "allowed in a model checkpoint (only tensors, omegaconf config objects and argparse.Namespace are)",
            path,
        )
    with torch.serialization.safe_globals(allow):
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=_all_members_stored(path))
        except pickle.UnpicklingError as exc:
            raise CheckpointError(f"refusing to load: {_first_line(exc)}", path) from None
        except (RuntimeError, EOFError, zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
            raise CheckpointError(f"corrupt torch checkpoint ({_first_line(exc)})", path) from None


def _all_members_stored(path: Path) -> bool:
    """True when no zip member is compressed, so the tensors can be memory-mapped instead of copied."""
    try:
        with zipfile.ZipFile(path) as archive:
            return all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
    except (zipfile.BadZipFile, OSError):
        return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def plain_config(obj: Any, _depth: int = 0) -> Any:
    """Turn stubbed OmegaConf containers (and Namespaces) into plain dicts/lists/values.

    A stubbed ``DictConfig`` becomes a dict of its ``_content``; a ``ListConfig`` a list; a value node
    (``AnyNode``, ``StringNode``...) its ``_val``. Interpolations are returned as their raw ``${...}`` text.
    """
    if _depth > 100:
        raise CheckpointError("checkpoint config is nested too deeply")
    if isinstance(obj, OmegaConfStub):
        state = obj.__dict__
        if "_val" in state:
            return plain_config(state["_val"], _depth + 1)
        if "_content" in state:
            return plain_config(state["_content"], _depth + 1)
        return None
    if isinstance(obj, argparse.Namespace):
        return {k: plain_config(v, _depth + 1) for k, v in vars(obj).items()}
    if isinstance(obj, dict):
        return {k: plain_config(v, _depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_config(v, _depth + 1) for v in obj]
    return obj


_INTERPOLATION = re.compile(r"^\$\{([A-Za-z_][\w.]*)\}$")


def model_string_from_args(args: Any, path: str | Path) -> str:
    """The model string (``args.model``) of an official checkpoint's ``args`` entry.

    ``args`` may be an ``argparse.Namespace``, a stubbed OmegaConf ``DictConfig`` or a plain dict. A value
    that is a plain interpolation ``${other.key}`` is resolved within the same config.
    """
    config = plain_config(args)
    if not isinstance(config, dict):
        raise CheckpointError(f"checkpoint 'args' is a {type(args).__name__}, expected a config with a 'model' entry", path)
    value = config.get("model")
    seen = 0
    while isinstance(value, str) and (match := _INTERPOLATION.match(value.strip())) and seen < 10:
        node: Any = config
        for part in match.group(1).split("."):
            node = node.get(part) if isinstance(node, dict) else None
        value, seen = node, seen + 1
    if not isinstance(value, str) or not value.strip():
        raise CheckpointError("checkpoint 'args' has no model string in its 'model' entry", path)
    return value
