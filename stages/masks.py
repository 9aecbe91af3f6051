"""Stage 2, masks + layers: object mask, effect mask, then background + foreground RGBA.

Object mask from the configured segmenter, effect (shadow) mask from the configured effect source,
background from the paired clean plate when the source has one (otherwise inpaint + relight), and the
foreground from the minimal-alpha rule. Cheap physical checks reject what cannot be a valid layer.
"""
from __future__ import annotations

import cv2
import numpy as np

from curation.compositing import recomposite_psnr
from curation.config import Resources, RunConfig
from curation.schema import Reason, Row, get_image, get_json, reject, set_image, update_meta
from curation.stage import Stage
from stages.decompose import background_shadowfree, background_unpaired, dilate, layers_from_background

EFFECT_ALPHA = 0.04  # alpha above which a pixel outside the object belongs to its effect layer


class MasksAndLayers(Stage):
    name = "masks"

    @staticmethod
    def resources(cfg: RunConfig) -> Resources:
        return cfg.masks.resources

    def object_mask(self, row: Row) -> np.ndarray | None:
        """The object's mask: the annotation (the ``annotation`` segmenter)."""
        return get_image(row, "ann_mask")

    def effect_mask(self, row: Row, composite: np.ndarray, obj: np.ndarray) -> np.ndarray:
        """The object's shadow/reflection region as the source annotated it (empty if it has none)."""
        eff = get_image(row, "ann_effect")
        return np.zeros_like(obj) if eff is None else (eff.astype(bool) & ~obj)

    def process(self, rows: list[Row]) -> None:
        cfg = self.cfg.masks
        for row in rows:
            composite = get_image(row, "composite")
            obj = self.object_mask(row)
            if obj is None or not obj.any():
                reject(row, self.name, Reason.EMPTY_MASK, "segmenter returned no object pixels")
                continue
            obj = obj.astype(bool)
            clean = get_image(row, "clean")
            ann = get_json(row, "ann")
            if clean is not None and clean.shape != composite.shape:
                reject(row, self.name, Reason.SIZE_MISMATCH, f"clean {clean.shape} vs composite {composite.shape}")
                continue
            if clean is not None and ann.get("clean_kind", "background") == "background":
                background, method = clean, "paired"
            elif clean is not None:
                background, method = background_shadowfree(composite, clean, obj, cfg.inpaint_radius), "shadowfree+inpaint"
            else:
                effect_in = self.effect_mask(row, composite, obj)
                background, method = background_unpaired(composite, obj, effect_in, cfg.inpaint_radius), "inpaint+relight"
            foreground = layers_from_background(composite, background, obj.astype(np.float32))
            alpha = foreground[..., 3]
            effect = (alpha > EFFECT_ALPHA * 255) & ~dilate(obj, 1)
            if self._check(row, composite, background, foreground, obj, effect):
                continue
            set_image(row, "background", background)
            set_image(row, "foreground", foreground)
            set_image(row, "mask", obj.astype(np.uint8) * 255)
            set_image(row, "effect", effect.astype(np.uint8) * 255)
            for col in ("clean", "ann_mask", "ann_effect"):  # consumed: keep blocks small downstream
                row[col] = b""
            update_meta(row, self.name, {
                "segmenter": cfg.segmenter, "effects": cfg.effects, "background": method,
                "object_px": int(obj.sum()), "effect_px": int(effect.sum()),
            })

    def _check(self, row: Row, composite, background, foreground, obj, effect) -> bool:
        """Physical checks; returns True when the row was rejected."""
        cfg = self.cfg.masks
        alpha = foreground[..., 3]
        if not (alpha[obj] == 255).all():
            reject(row, self.name, Reason.ALPHA_OUT_OF_RANGE, "object pixels are not opaque")
            return True
        if effect.any():
            near = dilate(obj, cfg.max_effect_gap_px)
            n, labels = cv2.connectedComponents(effect.astype(np.uint8))
            detached = [i for i in range(1, n) if not near[labels == i].any()]
            big = [i for i in detached if (labels == i).sum() > 0.02 * effect.sum()]
            if big:
                reject(row, self.name, Reason.EFFECT_DETACHED,
                       f"{len(big)} effect region(s) farther than {cfg.max_effect_gap_px} px from the object")
                return True
        value = recomposite_psnr(composite, background, foreground)
        row["psnr"] = min(value, 99.0)
        if value < cfg.psnr_floor:
            reject(row, self.name, Reason.LOW_RECOMPOSITE_PSNR, f"recomposite PSNR {value:.2f} dB < {cfg.psnr_floor}")
            return True
        return False
