"""The frontend interface and its registry.

A frontend consumes :class:`~slam.types.Frame` objects one at a time and produces a
:class:`~slam.types.FrontendOutput` for each. It keeps whatever state it needs (a recurrent state, a
reference keyframe) and may reset it; every reset starts a new *segment* with its own world frame.

Adding a frontend (the public API is :class:`Frontend`, :func:`register_frontend` and :mod:`slam.types`):

* **built-in**: one module (or package) directly under ``frontends/`` holding a config dataclass and a
  :class:`Frontend` subclass decorated with ``@register_frontend("name", NameConfig)``, plus optionally
  ``configs/frontends/<name>.yaml`` with the options that differ from the dataclass defaults. The registry
  imports every module under ``frontends/`` on first use, so there is no import list to edit. The module
  must not import torch (or load weights) at import time: listing frontends imports it.
* **third-party**: an installed distribution with an entry point in the group ``ttsa_slam.frontends``
  whose name is the frontend name and whose value is the module that calls :func:`register_frontend`,
  e.g. in ``pyproject.toml``: ``[project.entry-points."ttsa_slam.frontends"] myfe = "my_pkg.frontend"``.
  ``slam frontends`` lists it without importing it; ``frontend=myfe`` imports it.

Either way the options live under ``frontend.<section>.*`` (section = name unless given), the frontend
is built as ``cls(config)`` and ``tests/frontends/test_contract.py`` needs a case for it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from slam.registry import Registry
from slam.types import Frame, FrontendOutput, PairEstimate


class Frontend(ABC):
    """Streaming frame -> (pose, pointmap, confidence, K) estimator."""

    #: registered name, set by :func:`register_frontend`
    name: str = ""

    @classmethod
    def reads_stereo_pair(cls, config: Any) -> bool:
        """Whether a frontend of this class built from ``config`` reads ``Frame.right`` (the stereo partner
        image). The pipeline asks before opening the dataset, so that a dataset with partner images does not
        decode them for a frontend that ignores them. Default: False."""
        return False

    def usable_depth(self) -> tuple[float, float] | None:
        """Depth range (metres, exclusive low, inclusive high) this frontend uses from ``Frame.depth``, or
        None when it ignores depth. The pipeline uses it to refuse depth maps with no usable pixel."""
        return None

    @abstractmethod
    def reset(self) -> None:
        """Forget all state; the next :meth:`step` starts a new segment."""

    @abstractmethod
    def step(self, frame: Frame) -> FrontendOutput:
        """Process the next frame of the stream."""

    @abstractmethod
    def pair(self, a: Frame, b: Frame) -> PairEstimate:
        """Estimate the pose of ``b`` relative to ``a`` from scratch, without touching the stream state."""

    def refine_pair(self, a: Frame, b: Frame, T_ab: np.ndarray) -> PairEstimate | None:
        """Refine a hypothesis ``T_ab`` (pose of ``b``'s camera in ``a``'s, metric units) with the frontend's
        own dense alignment, e.g. photometric + depth terms that point alignment alone lacks.

        Optional: the default returns None, and callers (loop verification) keep their point-alignment
        result. Only called for metric frontends.
        """
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (models, threads). Default: nothing to do."""


@dataclass(frozen=True)
class FrontendSpec:
    """Registry entry: the frontend's factory and its typed config section."""

    factory: Callable[[Any], Frontend]
    config_cls: type
    section: str  # name of the config sub-section under ``frontend:`` (shared by cut3r/ttt3r/ttsa3r)


FRONTENDS: Registry[FrontendSpec] = Registry("frontend", package="frontends", group="ttsa_slam.frontends",
                                              skip=("base",))


def register_frontend(name: str, config_cls: type, section: str | None = None):
    """Class decorator registering a frontend under ``name`` with its config dataclass.

    The frontend is constructed as ``cls(config)`` where ``config`` is an instance of ``config_cls``
    filled from ``frontend.<section>`` of the run configuration.
    """

    def decorator(cls):
        cls.name = name
        FRONTENDS.register(name)(FrontendSpec(factory=cls, config_cls=config_cls, section=section or name))
        return cls

    return decorator


def frontend_config_class(section: str) -> type | None:
    """The config dataclass used by the frontends whose section is ``section`` (None if none).

    Imports every built-in and installed frontend (sections are only known once registered).
    """
    FRONTENDS.load_all()
    for spec in FRONTENDS.loaded().values():
        if spec.section == section:
            return spec.config_cls
    return None


def reads_stereo_pair(name: str, config: Any | None = None) -> bool:
    """:meth:`Frontend.reads_stereo_pair` of the frontend registered as ``name`` (``config`` defaults to its
    section's defaults). A plug-in registered with a factory that is not a :class:`Frontend` subclass cannot
    be asked and counts as reading the pair."""
    spec = FRONTENDS.get(name)
    factory = spec.factory
    if not (isinstance(factory, type) and issubclass(factory, Frontend)):
        return True
    return bool(factory.reads_stereo_pair(spec.config_cls() if config is None else config))


def create(name: str, config: Any | None = None) -> Frontend:
    """Instantiate the frontend registered as ``name``; ``config`` defaults to the section's defaults."""
    spec = FRONTENDS.get(name)
    if config is None:
        config = spec.config_cls()
    frontend = spec.factory(config)
    frontend.name = name
    return frontend
