"""Per-stage configs: each stage's resources, backend and options in one typed section."""
from __future__ import annotations

from typing import Literal

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


class MasksConfig(Strict):
    resources: Resources = Resources(num_cpus=0.5, batch_size=8, concurrency=1)
    segmenter: Literal["annotation"] = "annotation"
    effects: Literal["source"] = "source"
    inpaint_radius: int = Field(5, ge=1)
    #: below this recomposite PSNR (dB) a decomposition is rejected
    psnr_floor: float = 35.0
    #: an effect region this far (px) from the object counts as detached
    max_effect_gap_px: int = Field(24, ge=0)


class CaptionConfig(Strict):
    resources: Resources = Resources(num_cpus=0.25, batch_size=16, concurrency=1)
    backend: Literal["offline"] = "offline"
    max_chars: int = Field(200, ge=8)


class CurateConfig(Strict):
    resources: Resources = Resources(num_cpus=0.25, batch_size=16, concurrency=1)
    backend: Literal["physical"] = "physical"
    threshold: float = Field(0.5, ge=0, le=1)


class SinkConfig(Strict):
    #: target samples per shard (Ray hands each write task at least this many rows when it can)
    shard_size: int = Field(256, ge=1)
    png_compression: int = Field(3, ge=0, le=9)


class VerifyConfig(Strict):
    psnr_floor: float = 35.0
