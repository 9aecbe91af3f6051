"""What every curator backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

from curation.core.config import RunConfig
from curation.core.schema import Row


class CuratorBackend(ABC):
    """Scores rows in place; ``threshold`` is the P(good) below which a row is rejected."""

    threshold: float

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg

    @classmethod  # noqa: B027 - an optional hook: most backends need no start-up check
    def check(cls, cfg: RunConfig) -> None:
        """Fail on the driver, in a second, on what would otherwise fail in every actor."""

    @abstractmethod
    def score(self, rows: list[Row]) -> None:
        """Set ``score`` on each row, record meta, reject those below :attr:`threshold`."""
