"""Sink and verify config: shard size, PNG compression, the PSNR floor verify enforces."""
from __future__ import annotations

from pydantic import Field

from curation.core.config.base import Strict

class SinkConfig(Strict):
    #: target samples per shard (Ray hands each write task at least this many rows when it can)
    shard_size: int = Field(256, ge=1)
    png_compression: int = Field(3, ge=0, le=9)


class VerifyConfig(Strict):
    psnr_floor: float = 35.0
