"""Sink, report and verify config: shard size, PNG compression, rejects kept for review, the PSNR floor verify
enforces."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from curation.core.config.base import Strict


class SinkConfig(Strict):
    #: target samples per shard (Ray hands each write task at least this many rows when it can)
    shard_size: int = Field(256, ge=1)
    #: zlib level and PNG row filter of the layers: lossless at any setting, they trade shard bytes for
    #: sink CPU (the defaults: the cheapest measured whose files stay close to the smallest; docs/bench.md)
    png_compression: int = Field(1, ge=0, le=9)
    png_filter: Literal["none", "sub", "up", "avg", "paeth", "adaptive"] = "up"
    #: at most this many shards written at once, each by its own worker process (None: as many as free CPUs
    #: allow; a small machine saves a worker's memory with 1, a cluster needs several to keep up)
    concurrency: int | None = Field(None, ge=1)
    #: rows reach the shards in work-list order, so the same input gives the same shards byte for byte (a
    #: block that finishes early waits for the ones before it); false lets shards fill in finishing order
    deterministic: bool = True


class ReportConfig(Strict):
    """What a run keeps for its report and for review beyond the counts."""

    #: rejected rows of each stage and reason that keep thumbnails of their layers, per run (0: none)
    rejects_per_reason: int = Field(8, ge=0)
    #: the longer side of those thumbnails, in pixels (the curator reads 64 px: they can be scored and labelled)
    thumbnail_px: int = Field(160, ge=32, le=1024)


class VerifyConfig(Strict):
    psnr_floor: float = 35.0
