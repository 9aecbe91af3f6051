"""Source adapters: one module per dataset format, chosen by ``type`` in a ``sources:`` entry."""

from __future__ import annotations

from curation.core.config import SourceConfig
from curation.core.registry import Registry
from stages.sources.base import Source, Unit, make_key

__all__ = ["SOURCES", "Source", "Unit", "make_key", "build_source"]

SOURCES: Registry[Source] = Registry(
    "sources[].type",
    "source type",
    {
        "synthetic": "stages.sources.synthetic:SyntheticSource",
        "paired": "stages.sources.paired:PairedSource",
        "coco": "stages.sources.coco:CocoSource",
        "soba": "stages.sources.soba:SobaSource",
        "folder": "stages.sources.folder:FolderSource",
        "mulan": "stages.sources.mulan:MulanSource",
    },
)


def build_source(cfg: SourceConfig) -> Source:
    """Instantiate the adapter for one ``sources:`` entry (imports stay lazy: a worker loads only its own)."""
    return SOURCES.get(cfg.type)(cfg)
