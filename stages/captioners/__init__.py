"""Caption backends behind one small interface, chosen by ``caption.backend``."""

from __future__ import annotations

from curation.core.config import CaptionConfig
from curation.core.registry import Registry
from stages.captioners.base import KINDS, Captioner, Captions, Sample

__all__ = ["KINDS", "CAPTIONERS", "Captioner", "Captions", "Sample", "build_captioner", "check_captioner"]

CAPTIONERS: Registry[Captioner] = Registry(
    "caption.backend",
    "captioner",
    {
        "offline": "stages.captioners.offline:OfflineCaptioner",
        "transformers": "stages.captioners.transformers_vlm:TransformersCaptioner",  # torch + transformers: on use
    },
)


def build_captioner(cfg: CaptionConfig) -> Captioner:
    """The configured backend, loaded now (a missing or unusable model fails here, at actor start-up)."""
    return CAPTIONERS.get(cfg.backend).from_config(cfg)


def check_captioner(cfg: CaptionConfig) -> None:
    """The start-up checks without loading weights, for the driver to run before any actor starts."""
    CAPTIONERS.get(cfg.backend).check(cfg)
