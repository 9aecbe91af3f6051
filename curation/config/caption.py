"""Stage 3 config: captioning backend and post-processing."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from curation.config.base import Resources, Strict

class CaptionConfig(Strict):
    resources: Resources = Resources(num_cpus=0.25, batch_size=16, concurrency=1)
    backend: Literal["offline"] = "offline"
    max_chars: int = Field(200, ge=8)
