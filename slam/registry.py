"""A small typed name -> object registry with plug-in discovery (frontends, datasets, backends, update rules).

A registry can find its members in two places besides explicit :meth:`Registry.register` calls:

* **built-ins**: every module or package directly inside ``package`` (e.g. ``frontends``) is imported on
  first use, and registers its members on import. Adding a built-in therefore needs no import list: drop
  the module into the folder. Built-in modules must be cheap to import (no network weights, no torch at
  module level) because listing names imports them.
* **entry points** of ``group`` (e.g. ``ttsa_slam.frontends``) from installed distributions: the entry
  point's *name* is the registered name and its *value* a module that registers it on import. Names are
  read from the distribution metadata without importing anything; the module is imported the first time
  the name is asked for (:meth:`Registry.get`) or when everything is needed (:meth:`Registry.load_all`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
from typing import Callable, Generic, Iterator, TypeVar

from slam.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (usually classes or factories) of one kind.

    >>> frontends = Registry("frontend")
    >>> @frontends.register("rgbd")
    ... class RgbdFrontend: ...

    Args:
        kind: what is registered, for messages ("frontend", "dataset").
        package: dotted package whose direct submodules are the built-ins (None = no built-in discovery).
        group: entry-point group of third-party plug-ins (None = none).
        skip: submodule names of ``package`` that are not plug-ins (e.g. the module defining the registry).
    """

    def __init__(self, kind: str, package: str | None = None, group: str | None = None,
                 skip: tuple[str, ...] = ()):
        self.kind = kind
        self.package = package
        self.group = group
        self.skip = set(skip)
        self._items: dict[str, T] = {}
        self._builtins_loaded = package is None
        self._import_errors: dict[str, str] = {}  # module -> why its import failed

    # -- registration ---------------------------------------------------------------------------------
    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return decorator

    # -- discovery --------------------------------------------------------------------------------------
    def _load_builtins(self) -> None:
        if self._builtins_loaded:
            return
        self._builtins_loaded = True
        pkg = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(pkg.__path__):
            if info.name.startswith("_") or info.name in self.skip:
                continue
            module = f"{self.package}.{info.name}"
            try:
                importlib.import_module(module)
            except ImportError as exc:  # an optional dependency is missing: reported when asked for by name
                self._import_errors[module] = f"{type(exc).__name__}: {exc}"

    def entry_points(self) -> dict[str, importlib.metadata.EntryPoint]:
        """Installed plug-ins of this registry's group: name -> entry point (nothing is imported)."""
        if self.group is None:
            return {}
        return {ep.name: ep for ep in importlib.metadata.entry_points(group=self.group)}

    def _load_entry_point(self, ep: importlib.metadata.EntryPoint) -> None:
        try:
            ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plug-in is a user-facing error, not a crash
            raise RegistryError(f"{self.kind} {ep.name!r} (entry point {ep.value!r} of {self.group}) "
                                f"failed to load: {type(exc).__name__}: {exc}") from None
        if ep.name not in self._items:
            raise RegistryError(f"{self.kind} {ep.name!r}: module {ep.value!r} (entry point of {self.group}) "
                                f"was imported but registered no {self.kind} named {ep.name!r}")

    def load_all(self) -> None:
        """Import every built-in and every installed plug-in (needed e.g. to look up config sections)."""
        self._load_builtins()
        for name, ep in self.entry_points().items():
            if name not in self._items:
                self._load_entry_point(ep)

    # -- lookup -----------------------------------------------------------------------------------------
    def get(self, name: str) -> T:
        if name not in self._items:
            self._load_builtins()
        if name not in self._items:
            ep = self.entry_points().get(name)
            if ep is not None:
                self._load_entry_point(ep)
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            failed = "".join(f"; {module} could not be imported ({why})"
                             for module, why in self._import_errors.items())
            raise RegistryError(f"unknown {self.kind} {name!r} (known: {known}){failed}") from None

    def loaded(self) -> dict[str, T]:
        """The members registered so far (built-ins after discovery, plug-ins once loaded)."""
        self._load_builtins()
        return dict(sorted(self._items.items()))

    def names(self) -> list[str]:
        """Registered names: built-ins and installed plug-ins (plug-ins are not imported to list them)."""
        self._load_builtins()
        return sorted({*self._items, *self.entry_points()})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
