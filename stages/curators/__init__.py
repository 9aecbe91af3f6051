"""Curator backends behind one small interface, chosen by ``curate.backend``.

Each scores the ``ok`` rows it is given: it sets ``score`` (P(good)), records what it measured in
``meta.curate``, and rejects a row below its threshold (``low_curator_score``).
"""

from __future__ import annotations

from curation.core.config import RunConfig
from curation.core.registry import Registry
from stages.curators.base import CuratorBackend

__all__ = ["CURATORS", "CuratorBackend", "build_curator", "check_curator"]

CURATORS: Registry[CuratorBackend] = Registry(
    "curate.backend",
    "curator",
    {
        "physical": "stages.curators.physical:PhysicalCurator",
        "model": "stages.curators.model:ModelCurator",  # torch + timm: imported on use
    },
)


def build_curator(cfg: RunConfig) -> CuratorBackend:
    """The configured backend, loaded now (a missing or unreadable checkpoint fails at actor start-up)."""
    return CURATORS.get(cfg.curate.backend)(cfg)


def check_curator(cfg: RunConfig) -> None:
    """The start-up checks without building the backend, for the driver to run before any actor starts."""
    CURATORS.get(cfg.curate.backend).check(cfg)
