"""Stage 1 config: validation limits and instance selection rules."""
from __future__ import annotations

from pydantic import Field

from curation.config.base import Resources, Strict

class SelectionConfig(Strict):
    """Which instances can become a clean layer (non-occluded, whole, sensible size)."""

    min_area_frac: float = Field(0.002, ge=0, le=1)
    max_area_frac: float = Field(0.6, gt=0, le=1)
    min_side_px: int = Field(8, ge=1)
    border_margin_px: int = Field(1, ge=0)
    #: an instance whose dilated mask overlaps another instance by more than this fraction is occluded
    max_overlap_frac: float = Field(0.0, ge=0, le=1)
    overlap_margin_px: int = Field(2, ge=0)
    skip_crowd: bool = True


class IngestConfig(Strict):
    resources: Resources = Resources(num_cpus=0.5, batch_size=4, concurrency=1)
    max_pixels: int = Field(50_000_000, ge=1)
    #: images larger than this on their long side are downscaled (keeps blocks and GPU batches bounded)
    max_side: int = Field(1024, ge=32)
    dedupe: bool = True
    selection: SelectionConfig = SelectionConfig()
