"""User-facing errors.

Every problem caused by the user's input (files, data, configuration, checkpoints) is raised as a
:class:`SlamError` subclass whose message names the offending file or key and the problem. The CLI turns
these into a one-line message and exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class SlamError(Exception):
    """Base class of errors caused by bad user input. ``str(err)`` is a complete one-line message."""

    def __init__(self, problem: str, path: str | Path | None = None):
        self.problem = problem
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class ConfigError(SlamError):
    """Bad configuration: unknown key, wrong type, bad YAML, invalid value."""


class DatasetError(SlamError):
    """Missing or malformed dataset files (folders, index files, images, calibration, ground truth)."""


class CheckpointError(SlamError):
    """A model checkpoint that cannot be read safely or does not match the network."""


class RegistryError(SlamError):
    """A name (frontend, dataset, update rule, sink...) that is not registered."""
