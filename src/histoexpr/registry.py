"""One generic registry used by every swappable stage (readers, tissue detectors, stain
normalisers, encoders, heads).

Examples
--------
>>> from histoexpr.registry import Registry
>>> colours = Registry("colour")
>>> @colours.register("red")
... def red():
...     return (255, 0, 0)
>>> colours.create("red")
(255, 0, 0)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")

__all__ = ["Registry"]


class Registry(Generic[T]):
    """A name → factory mapping with priorities and helpful errors.

    Parameters
    ----------
    kind
        What the entries are ("slide reader", "stain normaliser", ...); used in messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._priority: dict[str, int] = {}

    def register(
        self, name: str, obj: T | None = None, *, priority: int = 0, replace: bool = False
    ) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted.

        Higher ``priority`` comes first in :meth:`list`. A name already taken by another
        object is an error unless ``replace`` (e.g. an encoder re-tuned in the same process).
        """
        key = name.lower()

        def _add(o: T) -> T:
            if key in self._entries and self._entries[key] is not o and not replace:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[key] = o
            self._priority[key] = priority
            return o

        return _add if obj is None else _add(obj)

    def get(self, name: str) -> T:
        """Return the entry called ``name``; unknown names list the valid ones."""
        key = str(name).lower()
        if key not in self._entries:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.list())}"
            )
        return self._entries[key]

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the entry called ``name`` with the given arguments."""
        return self.get(name)(*args, **kwargs)  # type: ignore[operator]

    def list(self) -> list[str]:
        """Names, highest priority first, then alphabetical."""
        return sorted(self._entries, key=lambda k: (-self._priority[k], k))

    def __contains__(self, name: object) -> bool:
        return str(name).lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.list()})"
