"""The trivial segmenter: the source's own annotation mask, as drawn."""

from __future__ import annotations

from curation.core.config import MasksConfig
from stages.segmenters.base import Prompt, Segmentation


class AnnotationSegmenter:
    name = "annotation"

    @classmethod
    def from_config(cls, cfg: MasksConfig) -> AnnotationSegmenter:
        return cls()

    def segment(self, prompts: list[Prompt]) -> list[Segmentation]:
        return [Segmentation(p.mask.astype(bool) if p.mask is not None else None, 1.0) for p in prompts]
