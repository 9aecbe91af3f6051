"""Shadow detectors: composite + object mask → the object's cast-shadow mask and a confidence, by
``masks.detector.backend``.

The confidence says how sure a detector is that its mask holds the object's whole shadow (1: nothing
shadow-like was left out). Stage 2 records it in ``meta.masks.shadow_confidence``; stage 4 rejects a row
whose detected shadow is not trusted as ``lost_shadow`` (``curate.min_shadow_confidence``), because a
shadow the detector missed stays in the background and the layer ships without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from curation.core.config.masks import DetectorOptions
from curation.core.registry import Registry


@dataclass(frozen=True)
class ShadowDetection:
    mask: np.ndarray  # bool, never overlapping the object
    confidence: float  # 0..1


class ShadowDetector(Protocol):
    """The interface every effect detector implements."""

    name: str

    @classmethod
    def from_options(cls, opts: DetectorOptions) -> ShadowDetector:
        """Build from the ``masks.detector`` config section (models are loaded here, once per actor)."""

    def detect_scored(self, composite: np.ndarray, obj: np.ndarray) -> ShadowDetection:
        """The object's cast shadow and the detector's confidence in it."""

    def detect(self, composite: np.ndarray, obj: np.ndarray) -> np.ndarray:
        """Bool mask of the object's cast shadow (never overlapping ``obj``)."""


DETECTORS: Registry[ShadowDetector] = Registry(
    "masks.detector.backend",
    "shadow detector",
    {
        "rule": "stages.shadows.rule:RuleShadowDetector",
        "sam": "stages.shadows.sam:SamShadowDetector",
        "exported": "stages.shadows.exported:ExportedShadowDetector",
    },
)


def build_detector(opts: DetectorOptions) -> ShadowDetector:
    """The configured detector (``masks.detector``)."""
    return DETECTORS.get(opts.backend).from_options(opts)
