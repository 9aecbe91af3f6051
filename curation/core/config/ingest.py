"""Stage 1 config: validation limits and instance selection rules."""

from __future__ import annotations

from pydantic import Field, model_validator

from curation.core.config.base import Resources, Strict


class SelectionConfig(Strict):
    """Which instances can become a clean layer (non-occluded, whole, sensible size)."""

    #: object area as a fraction of the image
    min_area_frac: float = Field(0.002, ge=0, le=1)
    max_area_frac: float = Field(0.6, gt=0, le=1)
    #: the shorter side of the object's box, in pixels (after downscaling to ``ingest.max_side``)
    min_side_px: int = Field(8, ge=1)
    #: an object with a pixel this close to the image edge is taken as cut off by the frame
    border_margin_px: int = Field(1, ge=0)
    #: occlusion by mask: the object's mask, dilated by ``overlap_margin_px``, may touch at most this
    #: fraction of its area of other instances' pixels
    max_overlap_frac: float = Field(0.0, ge=0, le=1)
    overlap_margin_px: int = Field(2, ge=0)
    #: occlusion by box (None: off): at most this fraction of the object's box may lie inside another
    #: instance's box grown by ``overlap_margin_px``
    max_bbox_overlap_frac: float | None = Field(None, ge=0, le=1)
    skip_crowd: bool = True

    @model_validator(mode="after")
    def _bounds(self) -> SelectionConfig:
        if self.min_area_frac >= self.max_area_frac:
            raise ValueError("min_area_frac must be below max_area_frac")
        return self


class IngestConfig(Strict):
    resources: Resources = Resources(num_cpus=0.5, batch_size=4, concurrency=1)
    #: decompression-bomb cap, checked from the file header before any pixel is decoded
    max_pixels: int = Field(50_000_000, ge=1)
    #: images larger than this on their long side are downscaled (keeps blocks and GPU batches bounded)
    max_side: int = Field(1024, ge=32)
    #: reject images whose (downscaled) pixels another unit of the run already has
    dedupe: bool = True
    selection: SelectionConfig = SelectionConfig()
