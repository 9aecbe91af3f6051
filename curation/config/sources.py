"""Source configs, one per adapter, told apart by ``type``."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import Field

from curation.config.base import Strict


class SyntheticSourceConfig(Strict):
    """Procedural scenes with exact ground truth (objects cut from bundled real photos, cast shadows)."""

    type: Literal["synthetic"] = "synthetic"
    name: str = Field("synth", pattern=r"^[A-Za-z0-9_-]+$")
    count: int = Field(48, ge=1)
    size: int = Field(256, ge=32, le=4096)
    seed: int = 0
    max_objects: int = Field(2, ge=1, le=4)
    #: fraction of scenes delivered with their clean background (a "paired" source)
    paired_fraction: float = Field(0.5, ge=0, le=1)


class PairedSourceConfig(Strict):
    """Folders of composite + clean image (+ masks): see ``stages/sources/paired.py`` for the layout."""

    type: Literal["paired"] = "paired"
    name: str = Field("paired", pattern=r"^[A-Za-z0-9_-]+$")
    #: a folder of sample folders; a relative path is resolved against the package's bundled data
    #: when it does not exist relative to the working directory
    root: Path


SourceConfig = Annotated[Union[SyntheticSourceConfig, PairedSourceConfig], Field(discriminator="type")]
