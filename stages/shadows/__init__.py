"""Shadow detectors: composite + object mask → the object's cast-shadow mask, chosen by ``masks.detector.backend``."""
from __future__ import annotations

from typing import Protocol

import numpy as np

from curation.core.config.masks import DetectorOptions
from curation.core.registry import Registry


class ShadowDetector(Protocol):
    """The interface every effect detector implements."""

    name: str

    @classmethod
    def from_options(cls, opts: DetectorOptions) -> ShadowDetector:
        """Build from the ``masks.detector`` config section."""

    def detect(self, composite: np.ndarray, obj: np.ndarray) -> np.ndarray:
        """Bool mask of the object's cast shadow (never overlapping ``obj``)."""


DETECTORS: Registry[ShadowDetector] = Registry("masks.detector.backend", "shadow detector", {
    "rule": "stages.shadows.rule:RuleShadowDetector",
})


def build_detector(opts: DetectorOptions) -> ShadowDetector:
    """The configured detector (``masks.detector``)."""
    return DETECTORS.get(opts.backend).from_options(opts)
