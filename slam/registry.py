"""A small typed name -> factory registry used for frontends, datasets, update rules and sinks."""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from slam.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (usually classes or factories) of one kind.

    >>> frontends = Registry("frontend")
    >>> @frontends.register("rgbd")
    ... class RgbdFrontend: ...
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise RegistryError(f"unknown {self.kind} {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))
