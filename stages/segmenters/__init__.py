"""Object segmenters behind one interface, chosen by ``masks.segmenter``: ``annotation`` (the default),
``grabcut`` (offline refinement) and ``sam`` (a local checkpoint)."""

from __future__ import annotations

from curation.core.config import MasksConfig
from curation.core.registry import Registry
from stages.segmenters.base import Prompt, Segmentation, Segmenter, points_from_ann

__all__ = ["Prompt", "Segmentation", "Segmenter", "SEGMENTERS", "build_segmenter", "points_from_ann"]

SEGMENTERS: Registry[Segmenter] = Registry(
    "masks.segmenter",
    "segmenter",
    {
        "annotation": "stages.segmenters.annotation:AnnotationSegmenter",
        "grabcut": "stages.segmenters.grabcut:GrabCutSegmenter",
        "sam": "stages.segmenters.sam:SamSegmenter",
    },
)


def build_segmenter(cfg: MasksConfig) -> Segmenter:
    """The configured segmenter, its model (if any) loaded now: once per actor."""
    return SEGMENTERS.get(cfg.segmenter).from_config(cfg)
