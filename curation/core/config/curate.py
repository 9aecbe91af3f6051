"""Stage 4 config: curator backend, its checkpoint and device, and the threshold."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from curation.core.config.base import Resources, Strict


class CurateConfig(Strict):
    resources: Resources = Resources(num_cpus=0.25, batch_size=16, concurrency=1)
    #: ``model``: the trained curator (timm, safetensors); ``physical``: the hand-made PSNR + ghost rule
    backend: Literal["physical", "model"] = "physical"
    #: the ``model`` backend's safetensors checkpoint; None = the shipped curator_model/checkpoint/curator.safetensors
    checkpoint: Path | None = None
    #: ``auto`` = cuda when this actor has a GPU, else cpu
    device: str = "auto"
    #: P(good) below this is rejected; None = the checkpoint's own threshold (model) or 0.5 (physical)
    threshold: float | None = Field(None, ge=0, le=1)
    #: ``model``: run a checkpoint whose training data were layered with another fill (or other stage-2 layering
    #: settings) than this run's ``masks`` section; by default such a run is refused at start
    allow_fill_mismatch: bool = False
    #: a shadow found by stage 2's detector with a confidence below this is taken as missed: ``lost_shadow``
    #: (0 disables; the default comes from ``python -m stages.shadows.tune``, docs/layers.md)
    min_shadow_confidence: float = Field(0.612, ge=0, le=1)
