"""Paired photo sets: the scene with the object, and the same scene without it (or without its shadow).

Layout, one folder per sample under ``root``::

    root/<sample_id>/composite.(png|jpg|jpeg)     the photo (required)
                     background.(png|jpg|jpeg)    clean plate: object and its effects removed
                  or shadowfree.(png|jpg|jpeg)    effects removed, object still there (DESOBA style)
                     object_mask.png              the object (required with shadowfree; else derived)
                     shadow_mask.png              the object's shadow (optional annotation)
                     label.txt                    the object's category (optional)

Or, with ``manifest:``, a CSV file (header row required) listing one sample per row, paths relative to
``root``::

    id,composite,background,shadowfree,object_mask,shadow_mask,label
    kitchen_01,kitchen_01/with.jpg,kitchen_01/without.jpg,,,,mug

``id`` and ``composite`` are required, and exactly one of ``background`` / ``shadowfree``; a row that
breaks this (or repeats an id, or has the wrong number of fields) becomes a ``bad_manifest_row``.
Both images (and the masks) must have the same size. One sample is one unit and one instance.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from curation.core.compositing import to_float
from curation.core.config import PairedSourceConfig
from curation.core.data import BUNDLED
from curation.core.decompose import minimal_alpha
from curation.core.imageio import ImageError, read_bytes, read_image, read_mask, within
from curation.core.morphology import bbox_of
from curation.core.schema import Reason, Row, new_row
from stages.sources.base import Source, Unit, bad_unit, make_key

EXTS = (".png", ".jpg", ".jpeg")
MANIFEST_COLUMNS = ("id", "composite", "background", "shadowfree", "object_mask", "shadow_mask", "label")


def resolve_root(root: Path) -> Path:
    """A relative root that does not exist here is looked up in the package's bundled data."""
    if root.exists() or root.is_absolute():
        return root
    return BUNDLED / root


def _find(folder: Path, stem: str) -> Path | None:
    for ext in EXTS:
        p = folder / f"{stem}{ext}"
        if p.exists():
            return p
    return None


def derived_object_mask(composite: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Without an annotation: the largest region the clean plate cannot explain without an opaque layer."""
    opaque: np.ndarray = (minimal_alpha(to_float(composite), to_float(background)) > 0.5).astype(np.uint8)
    opaque = cv2.morphologyEx(opaque, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(opaque)
    if n <= 1:
        return np.zeros(composite.shape[:2], bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def manifest_units(path: Path, root: Path) -> Iterator[Unit]:
    """Stream a CSV manifest; each row is a unit, a malformed one a unit that will be rejected."""
    seen: set[str] = set()
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        unknown = set(header) - set(MANIFEST_COLUMNS)
        if "id" not in header or "composite" not in header or unknown:
            raise ValueError(f"{path}: header {header} must name id and composite, and only {MANIFEST_COLUMNS}")
        for n, fields in enumerate(reader, 2):
            if not any(v.strip() for v in fields):
                continue
            if len(fields) != len(header):
                yield bad_unit(
                    f"line_{n}", f"{path.name} line {n} has {len(fields)} fields, expected {len(header)}", fields
                )
                continue
            rec = {k: v.strip() for k, v in zip(header, fields, strict=True)}
            sid = rec["id"]
            clean = [k for k in ("background", "shadowfree") if rec.get(k)]
            problem = (
                "no id"
                if not sid
                else f"id {sid!r} is repeated"
                if sid in seen
                else "no composite"
                if not rec["composite"]
                else "needs exactly one of background / shadowfree"
                if len(clean) != 1
                else None
            )
            if problem:
                yield bad_unit(f"line_{n}", f"{path.name} line {n}: {problem}", fields)
                continue
            seen.add(sid)
            yield Unit(
                unit_id=sid,
                ref={
                    "composite": str(root / rec["composite"]),
                    "clean": str(root / rec[clean[0]]),
                    "clean_kind": clean[0],
                    **{k: str(root / rec[k]) if rec.get(k) else None for k in ("object_mask", "shadow_mask")},
                    "label": rec.get("label") or None,
                },
            )


def folder_files(folder: Path) -> dict[str, Any]:
    """The files of one sample folder, in the same shape as a manifest row."""
    if not os.access(folder, os.R_OK | os.X_OK):
        raise ImageError(Reason.UNREADABLE, f"folder {folder} cannot be read (permission denied)")
    comp = _find(folder, "composite")
    if comp is None:
        raise ImageError(Reason.MISSING_FILE, f"{folder} has no composite.(png|jpg)")
    clean, kind = _find(folder, "background"), "background"
    if clean is None:
        clean, kind = _find(folder, "shadowfree"), "shadowfree"
    if clean is None:
        raise ImageError(Reason.MISSING_FILE, f"{folder} has neither background.* nor shadowfree.*")
    label = folder / "label.txt"
    return {
        "composite": str(comp),
        "clean": str(clean),
        "clean_kind": kind,
        "object_mask": str(folder / "object_mask.png") if (folder / "object_mask.png").exists() else None,
        "shadow_mask": str(folder / "shadow_mask.png") if (folder / "shadow_mask.png").exists() else None,
        "label": read_bytes(label).decode(errors="replace").strip() if label.exists() else None,
    }


class PairedSource(Source):
    def __init__(self, cfg: PairedSourceConfig):
        self.cfg = cfg
        self.name = cfg.name
        self.root = resolve_root(cfg.root)

    def units(self) -> Iterator[Unit]:
        if not self.root.is_dir():
            raise FileNotFoundError(f"paired source {self.name!r}: root {self.root} is not a folder")
        if self.cfg.manifest is not None:
            manifest = self.cfg.manifest if self.cfg.manifest.is_absolute() else self.root / self.cfg.manifest
            yield from manifest_units(manifest, self.root)
            return
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            yield Unit(unit_id=folder.name, ref={"folder": str(folder)})

    def expected_keys(self, unit: Unit) -> list[str] | None:
        return [make_key(self.name, unit.unit_id, 0)]

    def load(self, unit: Unit, max_pixels: int) -> list[Row]:
        files = folder_files(Path(unit.ref["folder"])) if "folder" in unit.ref else unit.ref
        for column in ("composite", "clean", "object_mask", "shadow_mask"):
            if files[column]:
                within(self.root, files[column])
        comp_path, bg_path, kind = Path(files["composite"]), Path(files["clean"]), files["clean_kind"]
        composite = read_image(comp_path, max_pixels)
        clean = read_image(bg_path, max_pixels)
        if clean.shape != composite.shape:
            raise ImageError(
                Reason.SIZE_MISMATCH,
                f"{comp_path.name} is {composite.shape[1]}x{composite.shape[0]} but "
                f"{bg_path.name} is {clean.shape[1]}x{clean.shape[0]}",
            )
        if files["object_mask"]:
            mask_path = Path(files["object_mask"])
            mask = read_mask(mask_path, max_pixels)
            if mask.shape != composite.shape[:2]:
                raise ImageError(
                    Reason.SIZE_MISMATCH,
                    f"{mask_path.name} is {mask.shape[1]}x{mask.shape[0]} but the "
                    f"composite is {composite.shape[1]}x{composite.shape[0]}",
                )
        elif kind == "background":
            mask = derived_object_mask(composite, clean)
        else:
            raise ImageError(Reason.MISSING_FILE, f"{unit.unit_id}: shadowfree pairs need an object mask")
        effect = read_mask(files["shadow_mask"], max_pixels) if files["shadow_mask"] else None
        if effect is not None and effect.shape != mask.shape:
            raise ImageError(Reason.SIZE_MISMATCH, f"{files['shadow_mask']} does not match the composite size")
        label = files["label"] or "object"
        return [
            new_row(
                key=make_key(self.name, unit.unit_id, 0),
                source=self.name,
                source_ref=str(comp_path),
                label=label,
                composite=composite,
                clean=clean,
                ann_mask=mask,
                ann_effect=effect,
                ann={
                    "bbox": list(bbox_of(mask) or (0, 0, 0, 0)),
                    "category": label,
                    "image_id": unit.unit_id,
                    "instance_id": 0,
                    "clean_kind": kind,
                },
            )
        ]
