"""COCO 2017 instances (``annotations/instances_{train,val}2017.json`` + ``{train,val}2017/``).

One unit per ``images`` entry, carrying that image's instances (segmentation, bbox, iscrowd, category
name) so that a worker on any node needs nothing but the unit and the image file. Every instance becomes a
row, crowd regions and filtered categories included: they are rejected by selection after they have served
as occluders of their neighbours. Keys are ``{source}-{image_id}-{annotation_id}``.

Masks are decoded in the frame the JSON's ``width``/``height`` describe. When the photo carries an EXIF
rotation, the frame whose size matches decides: upright (annotations drawn on the displayed photo) or
stored (annotations drawn on the raw pixels, which are then rotated like the photo). Neither matching is
``size_mismatch``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from curation.core.config.sources import CocoSourceConfig, SobaSourceConfig
from curation.core.imageio import ImageError, decode_oriented, orient_array, read_bytes, within
from curation.core.morphology import bbox_of
from curation.core.schema import Reason, Row, StageName, new_row, reject
from stages.sources.base import Source, Unit, bad_unit, fit_size, make_key, resize_image, resize_mask
from stages.sources.coco_json import (
    AnnotationError,
    AnnotationIndex,
    categories,
    decode_segmentation,
    has_nonfinite,
    id_key,
    image_entry_problem,
    stream_items,
)


class CocoSource(Source):
    """Streaming adapter for COCO-format instance annotations."""

    cfg: CocoSourceConfig | SobaSourceConfig  # SobaSource reads its COCO-style files with this class's code

    def __init__(self, cfg: CocoSourceConfig):
        self.cfg = cfg
        self.name = cfg.name
        self.annotations = cfg.annotations.expanduser()
        self.images = cfg.images.expanduser()
        self.wanted = None if cfg.categories is None else set(cfg.categories)

    # -- driver side ---------------------------------------------------------------------------------
    def instances(self, anns: list[Any], cats: dict[str, str]) -> list[dict[str, Any]]:
        """The candidate instances of one image, as compact JSON-ready dicts."""
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for n, ann in enumerate(anns):
            if not isinstance(ann, dict):
                out.append({"id": f"x{n}", "error": f"annotation is a {type(ann).__name__}"})
                continue
            ann_id = id_key(ann.get("id")) or f"x{n}"
            repeated = ann_id in seen
            if repeated:
                ann_id = f"{ann_id}_dup{n}"  # keys must stay unique
            seen.add(ann_id)
            label = cats.get(id_key(ann.get("category_id")) or "", "")
            inst = {
                "id": ann_id,
                "category": label,
                "iscrowd": int(bool(ann.get("iscrowd", 0))),
                "bbox": ann.get("bbox"),
                "segmentation": ann.get("segmentation"),
            }
            if repeated:
                inst["error"] = f"annotation id {ann.get('id')!r} is repeated"
            elif has_nonfinite(ann):
                inst["error"] = "annotation holds a NaN or Infinity"
            elif not label:
                inst["error"] = f"category_id {ann.get('category_id')!r} is not among the categories"
            elif self.wanted is not None and label not in self.wanted:
                inst["candidate"] = False
            out.append(inst)
        return out

    def units(self) -> Iterator[Unit]:
        if not self.annotations.is_file():
            raise FileNotFoundError(f"{self.cfg.type} source {self.name!r}: {self.annotations} is not a file")
        cats = categories(self.annotations)
        with AnnotationIndex(self.annotations, tmp_dir=self.cfg.index_dir) as index:
            yield from self._image_units(index, cats)

    def _image_units(self, index: AnnotationIndex, cats: dict[str, str]) -> Iterator[Unit]:
        for n, entry in enumerate(stream_items(self.annotations, "images.item")):
            problem = image_entry_problem(entry)
            if problem:
                yield bad_unit(f"images_{n}", problem, entry)
                continue
            image_id = id_key(entry["id"])
            assert image_id is not None, "image_entry_problem has checked the id"
            if not index.mark_seen(image_id):
                yield bad_unit(f"{image_id}_dup{n}", f"image id {image_id} is listed twice", entry)
                continue
            yield Unit(
                unit_id=image_id,
                ref={
                    "file": entry["file_name"],
                    "width": int(entry["width"]),
                    "height": int(entry["height"]),
                    "image_id": entry["id"],
                    "instances": self.instances(index.for_image(image_id), cats),
                },
            )
        for seq, ann in index.orphans():
            image_id = ann.get("image_id") if isinstance(ann, dict) else None
            ann_id = id_key(ann.get("id")) if isinstance(ann, dict) else None
            yield bad_unit(
                f"annotation_{ann_id or f'seq{seq}'}",
                f"annotation refers to image_id {image_id!r}, which is not listed",
                ann,
            )

    def expected_keys(self, unit: Unit) -> list[str] | None:
        return [make_key(self.name, unit.unit_id, inst["id"]) for inst in unit.ref["instances"]]

    # -- worker side ---------------------------------------------------------------------------------
    def load(self, unit: Unit, max_pixels: int) -> list[Row]:
        return self.load_scaled(unit, max_pixels, None)[0]

    def load_scaled(self, unit: Unit, max_pixels: int, max_side: int | None) -> tuple[list[Row], float]:
        ref = unit.ref
        path = within(self.images, self.images / ref["file"])
        image, orientation = decode_oriented(read_bytes(path), max_pixels, name=str(path))
        H, W = int(ref["height"]), int(ref["width"])
        h, w = image.shape[:2]
        if (h, w) == (H, W):
            reorient = 1
        elif orientation in (5, 6, 7, 8) and (w, h) == (H, W):
            reorient = orientation  # annotated on the stored pixels; rotate the masks like the photo
        else:
            raise ImageError(
                Reason.SIZE_MISMATCH,
                f"{path} is {w}x{h} (EXIF orientation {orientation}) but the annotation file says {W}x{H}",
            )
        th, tw, scale = fit_size(h, w, max_side)
        composite = resize_image(image, th, tw)
        del image

        def to_frame(mask: np.ndarray) -> np.ndarray:
            return resize_mask(orient_array(mask, reorient), th, tw)

        rows = [self._row(unit, path, inst, composite, H, W, to_frame, scale) for inst in ref["instances"]]
        return rows, scale

    def effect_of(self, inst: dict[str, Any], H: int, W: int) -> np.ndarray | None:
        """The instance's effect (shadow) mask in the annotation frame; COCO has none."""
        return None

    def _row(
        self,
        unit: Unit,
        path: Path,
        inst: dict[str, Any],
        composite: np.ndarray,
        H: int,
        W: int,
        to_frame: Callable[[np.ndarray], np.ndarray],
        scale: float,
    ) -> Row:
        key = make_key(self.name, unit.unit_id, inst["id"])
        ann = {
            "image_id": unit.ref["image_id"],
            "instance_id": inst["id"],
            "category": inst.get("category", ""),
            "iscrowd": inst.get("iscrowd", 0),
            "source_bbox": inst.get("bbox"),
            "scale": round(scale, 5),
        }
        if inst.get("candidate") is False:
            ann["candidate"] = False
        row = new_row(key=key, source=self.name, source_ref=f"{path}#{inst['id']}", label=ann["category"], ann=ann)
        if "error" in inst:
            return reject(row, StageName.INGEST, Reason.BAD_ANNOTATION, inst["error"])
        try:
            mask = to_frame(decode_segmentation(inst.get("segmentation"), H, W))
            effect = self.effect_of(inst, H, W)
        except AnnotationError as err:
            return reject(row, StageName.INGEST, Reason.BAD_ANNOTATION, f"annotation {inst['id']}: {err}")
        ann["bbox"] = list(bbox_of(mask) or (0, 0, 0, 0))
        ann["effect_annotated"] = effect is not None
        return new_row(
            key=key,
            source=self.name,
            source_ref=row["source_ref"],
            label=ann["category"],
            composite=composite,
            ann_mask=mask,
            ann_effect=None if effect is None else to_frame(effect),
            ann=ann,
        )
