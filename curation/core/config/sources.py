"""Source configs, one per adapter, told apart by ``type``.

Paths may be absolute or relative to the working directory; the bundled demo data is found by name.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from curation.core.config.base import Strict

SourceName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]


class SyntheticSourceConfig(Strict):
    """Procedural scenes with exact ground truth (objects cut from bundled real photos, cast shadows)."""

    type: Literal["synthetic"] = "synthetic"
    name: SourceName = "synth"
    count: int = Field(48, ge=1)
    size: int = Field(256, ge=32, le=4096)
    seed: int = 0
    max_objects: int = Field(2, ge=1, le=4)
    #: fraction of scenes delivered with their clean background (a "paired" source)
    paired_fraction: float = Field(0.5, ge=0, le=1)


class PairedSourceConfig(Strict):
    """Composite + clean image (+ masks) per sample: see ``stages/sources/paired.py`` for the layout."""

    type: Literal["paired"] = "paired"
    name: SourceName = "paired"
    #: a folder of sample folders; a relative path is resolved against the package's bundled data
    #: when it does not exist relative to the working directory
    root: Path
    #: optional CSV listing the samples instead of one folder each (paths relative to ``root``)
    manifest: Path | None = None


class CocoSourceConfig(Strict):
    """COCO 2017 instances: ``annotations/instances_*.json`` and the image folder it refers to."""

    type: Literal["coco"] = "coco"
    name: SourceName = "coco"
    annotations: Path
    images: Path
    #: keep only these category names (None: all)
    categories: list[str] | None = None
    #: where the driver's on-disk annotation index lives while units are listed (None: the system temp dir)
    index_dir: Path | None = None


class SobaSourceConfig(Strict):
    """SOBA: COCO-style JSON with object and shadow instances linked by an association id."""

    type: Literal["soba"] = "soba"
    name: SourceName = "soba"
    annotations: Path
    images: Path
    #: category names (case-insensitive) of object and of shadow instances
    object_categories: list[str] = Field(default_factory=lambda: ["object"], min_length=1)
    shadow_categories: list[str] = Field(default_factory=lambda: ["shadow"], min_length=1)
    #: the annotation field whose value an object shares with its shadow
    association_key: str = "association"
    index_dir: Path | None = None


class FolderSourceConfig(Strict):
    """Plain photos without annotations; candidates are the segmenter's object proposals."""

    type: Literal["folder"] = "folder"
    name: SourceName = "folder"
    #: a folder searched recursively for images, or a text file with one image path per line
    root: Path | None = None
    list_file: Path | None = None
    extensions: list[str] = Field(default_factory=lambda: [".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"])
    max_proposals: int = Field(4, ge=1, le=64)
    #: ``stages.segmenters.proposals.propose_objects`` backend and its options
    proposal_backend: Literal["offline", "sam"] = "offline"
    checkpoint: Path | None = None
    model_type: str = "vit_b"
    #: where the proposal model runs ("cuda" needs ``ingest.resources.num_gpus``)
    device: str = "cpu"

    @model_validator(mode="after")
    def _one_input(self) -> "FolderSourceConfig":
        if (self.root is None) == (self.list_file is None):
            raise ValueError("give exactly one of root or list_file")
        return self


SourceConfig = Annotated[
    Union[SyntheticSourceConfig, PairedSourceConfig, CocoSourceConfig, SobaSourceConfig, FolderSourceConfig],
    Field(discriminator="type"),
]
