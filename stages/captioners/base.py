"""The captioner interface: three captions per sample, from the sample's layers, a batch at a time."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from curation.core.config import CaptionConfig

#: the caption kinds, in the order every backend returns them
KINDS = ("composite", "foreground", "background")


@dataclass(frozen=True)
class Sample:
    """What a captioner may look at: the source label and the layers stage 2 produced."""

    label: str
    composite: np.ndarray  # RGB uint8
    background: np.ndarray  # RGB uint8
    foreground: np.ndarray  # RGBA uint8, straight alpha
    mask: np.ndarray  # object mask (bool or uint8)
    effect: np.ndarray  # effect mask (bool or uint8)


class Captions(NamedTuple):
    composite: str
    foreground: str
    background: str


class Captioner(ABC):
    """A backend, built once per actor; a backend that cannot work raises at construction, not on a batch."""

    @classmethod
    @abstractmethod
    def from_config(cls, cfg: CaptionConfig) -> Captioner:
        """Build from the ``caption`` config section."""

    @classmethod  # noqa: B027 - an optional hook: most backends check nothing
    def check(cls, cfg: CaptionConfig) -> None:
        """What can be checked on the driver without loading weights; raise with the config key at fault."""

    @abstractmethod
    def caption(self, samples: Sequence[Sample]) -> list[Captions]:
        """Raw captions (before post-processing), one triple per sample, in order."""

    @abstractmethod
    def provenance(self) -> dict[str, Any]:
        """What produced the captions, recorded in each sample's ``meta.caption``."""
