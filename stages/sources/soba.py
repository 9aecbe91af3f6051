"""SOBA (Shadow-OBject Association; Wang et al., CVPR 2020): object instances with their cast shadows.

The annotation file is COCO-style. ``categories`` name object and shadow classes (``object`` / ``shadow``
in SOBA's release), and each object annotation shares the value of an association field
(``association`` by default, ``association_key`` in the config) with its shadow annotation; the file's
``association`` / ``association_anno`` arrays describe the pairs as a whole and are not needed here.
One row per object instance; its associated shadow mask(s) become ``ann_effect``. Shadows are not rows,
and an object without a shadow has no effect annotation (``ann.effect_annotated`` is false).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from curation.core.config.sources import SobaSourceConfig
from stages.sources.coco import CocoSource
from stages.sources.coco_json import AnnotationError, decode_segmentation, id_key


class SobaSource(CocoSource):
    cfg: SobaSourceConfig

    def __init__(self, cfg: SobaSourceConfig):
        self.cfg = cfg
        self.name = cfg.name
        self.annotations = cfg.annotations.expanduser()
        self.images = cfg.images.expanduser()
        self.wanted = None
        self.objects = {c.lower() for c in cfg.object_categories}
        self.shadows = {c.lower() for c in cfg.shadow_categories}

    def instances(self, anns: list[Any], cats: dict[str, str]) -> list[dict[str, Any]]:
        """Object instances, each with the segmentations of the shadows that share its association id."""
        objects = super().instances(anns, cats)
        by_assoc: dict[str, list[Any]] = {}
        keep = []
        for inst, ann in zip(objects, anns, strict=True):
            kind = inst.get("category", "").lower()
            assoc = id_key(ann.get(self.cfg.association_key)) if isinstance(ann, dict) else None
            if kind in self.shadows:
                if assoc is not None:
                    by_assoc.setdefault(assoc, []).append(ann.get("segmentation"))
                continue
            if kind and kind not in self.objects:
                inst["candidate"] = False  # a category that is neither: an occluder, not a candidate
            inst["association"] = assoc
            keep.append(inst)
        for inst in keep:
            assoc = inst.pop("association")
            inst["effect"] = by_assoc.get(assoc, []) if assoc is not None else []
        return keep

    def effect_of(self, inst: dict[str, Any], H: int, W: int) -> np.ndarray | None:
        segs = inst.get("effect") or []
        if not segs:
            return None
        effect = np.zeros((H, W), bool)
        for segm in segs:
            try:
                effect |= decode_segmentation(segm, H, W)
            except AnnotationError as err:
                raise AnnotationError(f"its shadow: {err}") from None
        return effect
