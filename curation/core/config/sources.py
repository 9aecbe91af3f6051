"""Source configs, one per adapter, told apart by ``type``.

Paths may be absolute or relative to the working directory; the bundled demo data is found by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from curation.core.config.base import Strict

SourceName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]


class Quota(Strict):
    """How much of a source a run takes (``curation/quota.py``): the units (photos) are ranked by a hash of
    ``quota_seed``, the source name and the unit id, and taken in that order, so a rerun or a resumed run picks
    the same photos. ``max_samples`` counts the candidate samples (instances) the units hold, so it needs a
    source that knows them before decoding (``coco``, ``soba``, ``paired``)."""

    #: at most this many units (photos) of the source; None: all
    max_units: int | None = Field(None, ge=1)
    #: at most this many candidate samples (instances) of the source; None: all
    max_samples: int | None = Field(None, ge=1)
    quota_seed: int = 0


class SyntheticSourceConfig(Quota):
    """Procedural scenes with exact ground truth (objects cut from bundled real photos, cast shadows)."""

    type: Literal["synthetic"] = "synthetic"
    name: SourceName = "synth"
    count: int = Field(48, ge=1)
    size: int = Field(256, ge=32, le=4096)
    seed: int = 0
    max_objects: int = Field(2, ge=1, le=4)
    #: fraction of scenes delivered with their clean background (a "paired" source)
    paired_fraction: float = Field(0.5, ge=0, le=1)


class PairedSourceConfig(Quota):
    """Composite + clean image (+ masks) per sample: see ``stages/sources/paired.py`` for the layout."""

    type: Literal["paired"] = "paired"
    name: SourceName = "paired"
    #: a folder of sample folders; a relative path is resolved against the package's bundled data
    #: when it does not exist relative to the working directory
    root: Path
    #: optional CSV listing the samples instead of one folder each (paths relative to ``root``)
    manifest: Path | None = None


class CocoSourceConfig(Quota):
    """COCO 2017 instances: ``annotations/instances_*.json`` and the image folder it refers to."""

    type: Literal["coco"] = "coco"
    name: SourceName = "coco"
    annotations: Path
    images: Path
    #: keep only these category names (None: all)
    categories: list[str] | None = None
    #: where the driver's on-disk annotation index lives while units are listed (None: the system temp dir)
    index_dir: Path | None = None


class SobaSourceConfig(Quota):
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


class FolderSourceConfig(Quota):
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
    def _one_input(self) -> FolderSourceConfig:
        if (self.root is None) == (self.list_file is None):
            raise ValueError("give exactly one of root or list_file")
        return self


class MulanSourceConfig(Quota):
    """MuLAn annotation pickles paired with their base photos: see ``stages/sources/mulan.py`` for the layout."""

    type: Literal["mulan"] = "mulan"
    name: SourceName = "mulan"
    #: a folder searched recursively for ``*.p.zl`` annotation files (also ``*.p``, ``*.pkl``, ``*.pickle``)
    annotations: Path | None = None
    #: the base dataset these annotations decompose: COCO 2017 (``images``: folders holding train2017 and
    #: val2017 files) or LAION Aesthetics as img2dataset downloads it (``images``: its output folder)
    base: Literal["coco", "laion"] = "coco"
    images: list[Path] = Field(default_factory=list)
    #: instead of ``annotations``: a CSV with ``image,annotation`` columns (the pairs the card's script reads),
    #: paths relative to the CSV's folder; photos may also lie in ``images`` (named by absolute paths)
    pairs: Path | None = None
    #: img2dataset's ``number_sample_per_shard``: row r is ``{s:05d}/{s:05d}{i:04d}.jpg`` with s, i = divmod(r, n)
    laion_samples_per_shard: int = Field(10_000, ge=1)
    #: an annotation that inflates to more bytes than this is refused (compression bomb)
    max_annotation_bytes: int = Field(2 * 1024**3, ge=1024)

    @model_validator(mode="after")
    def _one_input(self) -> MulanSourceConfig:
        if (self.annotations is None) == (self.pairs is None):
            raise ValueError("give exactly one of annotations or pairs")
        if self.annotations is not None and not self.images:
            raise ValueError("annotations needs images: the base dataset's image folder(s)")
        return self


SourceConfig = Annotated[
    SyntheticSourceConfig
    | PairedSourceConfig
    | CocoSourceConfig
    | SobaSourceConfig
    | FolderSourceConfig
    | MulanSourceConfig,
    Field(discriminator="type"),
]
