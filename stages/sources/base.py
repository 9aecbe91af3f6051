"""The interface every source adapter implements.

A source is read in two steps so that a huge dataset never sits in one process: the driver streams
light :class:`Unit` descriptions (an image and its annotations, no pixels) into a parquet work list,
and ingest workers turn each unit into candidate rows with :meth:`Source.load`.
"""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Iterator

from curation.schema import Row

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def make_key(*parts: object) -> str:
    """A deterministic, dot-free WebDataset key from source name, image id and instance id."""
    return "-".join(_KEY_UNSAFE.sub("_", str(p)).strip("_") or "x" for p in parts)


@dataclass
class Unit:
    """One image's worth of work: an id unique within its source and a JSON-serialisable reference."""

    unit_id: str
    ref: dict[str, Any] = field(default_factory=dict)


class Source(ABC):
    name: str

    @abstractmethod
    def units(self) -> Iterator[Unit]:
        """Stream the source's units without decoding pixels."""

    @abstractmethod
    def load(self, unit: Unit, max_pixels: int) -> list[Row]:
        """Decode one unit into candidate rows (one per instance).

        Bad files raise :class:`curation.imageio.ImageError`; ingest records them as rejected rows.
        """

    def unit_key(self, unit: Unit) -> str:
        """The key of the row that stands for a whole unit when the unit itself is rejected."""
        return make_key(self.name, unit.unit_id)
