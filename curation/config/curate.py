"""Stage 4 config: curator backend and threshold."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from curation.config.base import Resources, Strict

class CurateConfig(Strict):
    resources: Resources = Resources(num_cpus=0.25, batch_size=16, concurrency=1)
    backend: Literal["physical"] = "physical"
    threshold: float = Field(0.5, ge=0, le=1)
