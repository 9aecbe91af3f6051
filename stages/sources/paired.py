"""Paired photo sets: the scene with the object, and the same scene without it (or without its shadow).

Layout, one folder per sample under ``root``::

    root/<sample_id>/composite.(png|jpg|jpeg)     the photo (required)
                     background.(png|jpg|jpeg)    clean plate: object and its effects removed
                  or shadowfree.(png|jpg|jpeg)    effects removed, object still there (DESOBA style)
                     object_mask.png              the object (required with shadowfree; else derived)
                     shadow_mask.png              the object's shadow (optional annotation)
                     label.txt                    the object's category (optional)

Both images must have the same size. One sample folder is one unit and one instance.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from curation.compositing import bbox_of, to_float
from curation.config import PairedSourceConfig
from curation.imageio import ImageError, read_image, read_mask
from curation.schema import Row, new_row
from stages.decompose import minimal_alpha
from stages.sources.base import Source, Unit, make_key

PACKAGE_DATA = Path(__file__).resolve().parents[2] / "curation" / "data" / "real"
EXTS = (".png", ".jpg", ".jpeg")


def resolve_root(root: Path) -> Path:
    """A relative root that does not exist here is looked up in the package's bundled data."""
    if root.exists() or root.is_absolute():
        return root
    return PACKAGE_DATA / root


def _find(folder: Path, stem: str) -> Path | None:
    for ext in EXTS:
        p = folder / f"{stem}{ext}"
        if p.exists():
            return p
    return None


def derived_object_mask(composite: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Without an annotation: the largest region the clean plate cannot explain without an opaque layer."""
    opaque = (minimal_alpha(to_float(composite), to_float(background)) > 0.5).astype(np.uint8)
    opaque = cv2.morphologyEx(opaque, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(opaque)
    if n <= 1:
        return np.zeros(composite.shape[:2], bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


class PairedSource(Source):
    def __init__(self, cfg: PairedSourceConfig):
        self.cfg = cfg
        self.name = cfg.name
        self.root = resolve_root(cfg.root)

    def units(self) -> Iterator[Unit]:
        if not self.root.is_dir():
            raise FileNotFoundError(f"paired source {self.name!r}: root {self.root} is not a folder")
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            yield Unit(unit_id=folder.name, ref={"folder": str(folder)})

    def load(self, unit: Unit, max_pixels: int) -> list[Row]:
        folder = Path(unit.ref["folder"])
        comp_path = _find(folder, "composite")
        if comp_path is None:
            raise ImageError("missing_file", f"{folder} has no composite.(png|jpg)")
        bg_path, kind = _find(folder, "background"), "background"
        if bg_path is None:
            bg_path, kind = _find(folder, "shadowfree"), "shadowfree"
        if bg_path is None:
            raise ImageError("missing_file", f"{folder} has neither background.* nor shadowfree.*")
        composite = read_image(comp_path, max_pixels)
        clean = read_image(bg_path, max_pixels)
        if clean.shape != composite.shape:
            raise ImageError("size_mismatch", f"{comp_path.name} is {composite.shape[1]}x{composite.shape[0]} but "
                             f"{bg_path.name} is {clean.shape[1]}x{clean.shape[0]}")
        mask_path = folder / "object_mask.png"
        if mask_path.exists():
            mask = read_mask(mask_path, max_pixels)
        elif kind == "background":
            mask = derived_object_mask(composite, clean)
        else:
            raise ImageError("missing_file", f"{folder}: shadowfree pairs need object_mask.png")
        if mask.shape != composite.shape[:2]:
            raise ImageError("size_mismatch", f"{mask_path.name} is {mask.shape[::-1]} but the composite is {composite.shape[1::-1]}")
        shadow_path = folder / "shadow_mask.png"
        effect = read_mask(shadow_path, max_pixels) if shadow_path.exists() else None
        if effect is not None and effect.shape != mask.shape:
            raise ImageError("size_mismatch", f"{shadow_path.name} does not match the composite size")
        label_path = folder / "label.txt"
        label = label_path.read_text().strip() if label_path.exists() else "object"
        return [new_row(
            key=make_key(self.name, unit.unit_id, 0), source=self.name, source_ref=str(comp_path), label=label,
            composite=composite, clean=clean, ann_mask=mask, ann_effect=effect,
            ann={"bbox": list(bbox_of(mask) or (0, 0, 0, 0)), "category": label, "image_id": unit.unit_id,
                 "instance_id": 0, "clean_kind": kind},
        )]
