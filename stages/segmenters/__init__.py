"""Object segmenters behind one interface: ``annotation``, ``grabcut`` (offline default) and ``sam``."""
from __future__ import annotations

from curation.config import MasksConfig
from stages.segmenters.base import Prompt, Segmentation, Segmenter, points_from_ann

__all__ = ["Prompt", "Segmentation", "Segmenter", "build_segmenter", "points_from_ann"]


def build_segmenter(cfg: MasksConfig) -> Segmenter:
    """The configured segmenter, its model (if any) loaded now: once per actor."""
    if cfg.segmenter == "sam":
        from stages.segmenters.sam import SamSegmenter

        o = cfg.sam
        return SamSegmenter(str(o.checkpoint), o.model_type, o.device, o.dtype, o.embed_batch_size, o.multimask)
    if cfg.segmenter == "grabcut":
        from stages.segmenters.grabcut import GrabCutSegmenter

        return GrabCutSegmenter(cfg.grabcut.iterations, cfg.grabcut.band_px)
    from stages.segmenters.annotation import AnnotationSegmenter

    return AnnotationSegmenter()
