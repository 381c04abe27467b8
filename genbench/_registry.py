"""A small typed registry: ``@registry.register(name, **meta)``, ``get(name)`` with "did you mean".

Components register themselves where they are defined, with their metadata, so that
``genbench ls``, reports and the contract tests read one source.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """An unknown registry name; the message lists close matches and all available names."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Named components of one kind (datasets, metrics, feature extractors, generators).

    A registry may also accept *prefixed* names (``folder:PATH``, ``domain:digits``): a
    prefix entry is registered with a trailing colon and receives the rest of the name.
    """

    def __init__(self, kind: str, loader: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        # called once before the first lookup, to import modules that register lazily
        self._loader = loader
        self._loaded = loader is None

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True
            assert self._loader is not None
            self._loader()

    def register(self, name: str, *, description: str = "", **meta: Any) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.add(name, obj, description=description, **meta)
            return obj

        return deco

    def add(self, name: str, obj: T, *, description: str = "", **meta: Any) -> None:
        if name in self._entries and self._entries[name].obj is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        if not description:
            doc = getattr(obj, "__doc__", None) or ""
            description = doc.strip().splitlines()[0] if doc.strip() else ""
        self._entries[name] = Entry(name, obj, description, dict(meta))

    def entry(self, name: str) -> Entry[T]:
        self._ensure_loaded()
        if name in self._entries:
            return self._entries[name]
        if ":" in name:
            prefix = name.split(":", 1)[0] + ":"
            if prefix in self._entries:
                return self._entries[prefix]
        raise UnknownNameError(self.unknown_message(name))

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def unknown_message(self, name: str) -> str:
        names = self.names()
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        return f"Unknown {self.kind} {name!r}.{hint} Available: {', '.join(names)}"

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        self._ensure_loaded()
        return [self._entries[n] for n in sorted(self._entries)]

    def __contains__(self, name: object) -> bool:
        try:
            self.entry(str(name))
        except UnknownNameError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
