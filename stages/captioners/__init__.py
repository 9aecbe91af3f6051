"""Caption backends behind one small interface; the run config's ``caption.backend`` picks one."""
from __future__ import annotations

from curation.config import CaptionConfig
from stages.captioners.base import KINDS, Captioner, Captions, Sample

__all__ = ["KINDS", "Captioner", "Captions", "Sample", "build_captioner", "check_captioner"]


def build_captioner(cfg: CaptionConfig) -> Captioner:
    """The configured backend, loaded now (a missing or unusable model fails here, at actor start-up)."""
    if cfg.backend == "transformers":
        from stages.captioners.transformers_vlm import TransformersCaptioner  # torch + transformers: import on use

        assert cfg.transformers is not None  # guaranteed by CaptionConfig's validator
        return TransformersCaptioner(cfg.transformers)
    from stages.captioners.offline import OfflineCaptioner

    return OfflineCaptioner()


def check_captioner(cfg: CaptionConfig) -> None:
    """The start-up checks without loading weights, for the driver to run before any actor starts."""
    if cfg.backend == "transformers":
        from stages.captioners.transformers_vlm import inspect_checkpoint

        assert cfg.transformers is not None
        inspect_checkpoint(cfg.transformers)
