"""Source adapters: one module per dataset format, chosen by ``type`` in the run config."""
from __future__ import annotations

from curation.config import SourceConfig
from stages.sources.base import Source, Unit, make_key


def build_source(cfg: SourceConfig) -> Source:
    """Instantiate the adapter for one ``sources:`` entry (imports stay lazy: a worker loads only its own)."""
    if cfg.type == "synthetic":
        from stages.sources.synthetic import SyntheticSource

        return SyntheticSource(cfg)
    if cfg.type == "paired":
        from stages.sources.paired import PairedSource

        return PairedSource(cfg)
    if cfg.type == "coco":
        from stages.sources.coco import CocoSource

        return CocoSource(cfg)
    if cfg.type == "soba":
        from stages.sources.soba import SobaSource

        return SobaSource(cfg)
    if cfg.type == "folder":
        from stages.sources.folder import FolderSource

        return FolderSource(cfg)
    raise ValueError(f"unknown source type {cfg.type!r}")


__all__ = ["Source", "Unit", "make_key", "build_source"]
