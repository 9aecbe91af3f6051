"""A name in the run config → the class that implements it, imported only when it is built.

Backends that pull in torch, SAM or transformers stay out of every process that does not use them:
each entry is an import path (``"package.module:Class"``), resolved on first use. An unknown name fails
with the config key it came from and the names that exist.
"""

from __future__ import annotations

import importlib
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """One family of interchangeable backends (sources, segmenters, captioners, ...)."""

    def __init__(self, key: str, kind: str, entries: dict[str, str]):
        self.key = key  # the config key that names a member, and what a member is: for error messages
        self.kind = kind
        self._entries = dict(entries)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def get(self, name: str) -> type[T]:
        """The class registered under ``name`` (imported now)."""
        try:
            target = self._entries[name]
        except KeyError:
            raise ValueError(
                f"{self.key}: unknown {self.kind} {name!r} (choose from {', '.join(self._entries)})"
            ) from None
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)
