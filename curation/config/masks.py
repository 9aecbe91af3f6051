"""Stage 2 config: segmenter, effect source, decomposition and its checks."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from curation.config.base import Resources, Strict

class MasksConfig(Strict):
    resources: Resources = Resources(num_cpus=0.5, batch_size=8, concurrency=1)
    segmenter: Literal["annotation"] = "annotation"
    effects: Literal["source"] = "source"
    inpaint_radius: int = Field(5, ge=1)
    #: below this recomposite PSNR (dB) a decomposition is rejected
    psnr_floor: float = 35.0
    #: an effect region this far (px) from the object counts as detached
    max_effect_gap_px: int = Field(24, ge=0)
