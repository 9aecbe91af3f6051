"""The object-segmenter interface: what a segmenter is given per instance and what it returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from curation.core.config import MasksConfig


@dataclass
class Prompt:
    """One instance to segment. ``image_id`` groups prompts on the same image (one embedding per image)."""

    image: np.ndarray  # RGB uint8
    image_id: str
    box: tuple[float, float, float, float] | None = None  # x, y, w, h
    points: np.ndarray | None = None  # (N, 3): x, y, label (1 = object, 0 = not)
    mask: np.ndarray | None = None  # the source's annotation mask, bool


@dataclass
class Segmentation:
    mask: np.ndarray | None  # bool, or None when the segmenter found nothing
    score: float  # the segmenter's confidence in [0, 1] (1 for a given annotation)


class Segmenter(Protocol):
    name: str

    @classmethod
    def from_config(cls, cfg: MasksConfig) -> Segmenter:
        """Build from the ``masks`` config section."""

    def segment(self, prompts: list[Prompt]) -> list[Segmentation]:
        """One result per prompt, in order."""


def points_from_ann(ann: dict) -> np.ndarray | None:
    """``ann["points"]`` as ``[[x, y], ...]`` (positive) or ``[[x, y, label], ...]`` → (N, 3) floats."""
    pts = ann.get("points")
    if not pts:
        return None
    arr = np.asarray([list(p) + [1.0] * (3 - len(p)) for p in pts], np.float32)
    return arr if arr.ndim == 2 and arr.shape[1] == 3 else None
