"""Test helpers: write checkpoints in the official on-disk layouts without omegaconf installed.

``save_official(path, state_dict, model_string, args_kind)`` writes ``torch.save({'model', 'args', ...})``
with ``args`` either an ``argparse.Namespace`` or an OmegaConf-shaped ``DictConfig`` built from stand-in
classes whose ``__module__`` is ``omegaconf.*``. Pickle stores classes by reference, so the stand-ins are
registered as fake ``omegaconf`` modules in ``sys.modules`` only while saving.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import sys
import types
import typing
from pathlib import Path

import torch


def _fake_class(module: str, name: str) -> type:
    return type(name, (), {"__module__": module, "__qualname__": name})


_MODULES = {
    "omegaconf.dictconfig": ["DictConfig"],
    "omegaconf.listconfig": ["ListConfig"],
    "omegaconf.base": ["ContainerMetadata", "Metadata"],
    "omegaconf.nodes": ["AnyNode"],
}
FAKE = {name: _fake_class(module, name) for module, names in _MODULES.items() for name in names}


@contextlib.contextmanager
def fake_omegaconf_modules():
    """Make the stand-in classes importable under their omegaconf names (for pickling only)."""
    added = []
    for module in ["omegaconf", *_MODULES]:
        if module not in sys.modules:
            sys.modules[module] = types.ModuleType(module)
            added.append(module)
    for module, names in _MODULES.items():
        for name in names:
            setattr(sys.modules[module], name, FAKE[name])
    try:
        yield
    finally:
        for module in added:
            del sys.modules[module]


def _obj(cls_name: str, **state):
    obj = FAKE[cls_name].__new__(FAKE[cls_name])
    obj.__dict__.update(state)
    return obj


def _metadata(key, container: bool):
    common = dict(ref_type=typing.Any, object_type=dict if container else None, optional=True, key=key,
                  flags={}, flags_root=False, resolver_cache=collections.defaultdict(dict))
    if container:
        return _obj("ContainerMetadata", key_type=typing.Any, element_type=typing.Any, **common)
    return _obj("Metadata", **common)


def hydra_args(model_string: str, model_value: str | None = None):
    """A DictConfig-shaped ``args`` like a Hydra training run's (a nested ListConfig and an interpolation).

    ``model_value`` overrides what is stored under ``model`` (e.g. an interpolation ``${arch}``); the
    model string is then also stored under ``arch``.
    """
    root = _obj("DictConfig", _metadata=_metadata(None, True), _parent=None, _content={})

    def node(key, value, parent):
        return _obj("AnyNode", _metadata=_metadata(key, False), _parent=parent, _val=value)

    resolution = _obj("ListConfig", _metadata=_metadata("resolution", True), _parent=root, _content=[])
    for i, (w, h) in enumerate([(512, 384), (512, 336)]):
        inner = _obj("ListConfig", _metadata=_metadata(i, True), _parent=resolution, _content=[])
        inner._content = [node(0, w, inner), node(1, h, inner)]
        resolution._content.append(inner)
    root._content = {
        "model": node("model", model_value if model_value is not None else model_string, root),
        "arch": node("arch", model_string, root),
        "resolution": resolution,
        "allow_repeat": node("allow_repeat", True, root),
        "dataset1": node("dataset1", "Co3d_Multi(allow_repeat=${allow_repeat}, split='train')", root),
        "lr": node("lr", 1e-6, root),
        "seed": node("seed", 0, root),
    }
    return root


def save_official(path: Path, state_dict: dict, model_string: str, args_kind: str = "namespace",
                  **extra) -> Path:
    """Write ``state_dict`` in the official training-script layout (``args_kind``: 'namespace' | 'hydra')."""
    if args_kind == "namespace":
        ckpt = {"model": state_dict, "args": argparse.Namespace(model=model_string, seed=0), "epoch": 3, **extra}
        torch.save(ckpt, path)
    elif args_kind == "hydra":
        with fake_omegaconf_modules():
            ckpt = {"model": state_dict, "args": hydra_args(model_string, extra.pop("model_value", None)),
                    "epoch": 3, "best_so_far": 0.5, **extra}
            torch.save(ckpt, path)
    else:
        raise ValueError(args_kind)
    return path
