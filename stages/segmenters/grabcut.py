"""Offline default that needs no weights: the annotation refined by GrabCut around its outline.

Annotation polygons are coarse at the outline (COCO's are drawn by hand); GrabCut re-decides only a
band across the outline from the object's and the surroundings' colour models, so the interior and the
far background stay as annotated. With only a box, GrabCut runs from the box (rectangle init).
"""

from __future__ import annotations

import cv2
import numpy as np

from curation.core.config import MasksConfig
from curation.core.morphology import bbox_of, dilate, erode
from stages.segmenters.base import Prompt, Segmentation


class GrabCutSegmenter:
    name = "grabcut"

    def __init__(self, iterations: int = 3, band_px: int = 4):
        self.iterations, self.band_px = iterations, band_px

    @classmethod
    def from_config(cls, cfg: MasksConfig) -> GrabCutSegmenter:
        return cls(cfg.grabcut.iterations, cfg.grabcut.band_px)

    def segment(self, prompts: list[Prompt]) -> list[Segmentation]:
        return [self._one(p) for p in prompts]

    def _one(self, p: Prompt) -> Segmentation:
        """GrabCut on a crop around the annotation (its colour models only need the object's surroundings)."""
        h, w = p.image.shape[:2]
        box: tuple[int, ...] | None = None
        if p.mask is not None and p.mask.any():
            box = bbox_of(p.mask)
        elif p.box is not None:
            box = tuple(int(round(v)) for v in p.box)
        if box is None:
            return Segmentation(None, 0.0)
        x, y, bw, bh = box
        pad = max(16, self.band_px * 4, max(bw, bh) // 4)
        ys, xs = slice(max(0, y - pad), min(h, y + bh + pad)), slice(max(0, x - pad), min(w, x + bw + pad))
        image = p.image[ys, xs]
        gc = np.full(image.shape[:2], cv2.GC_BGD, np.uint8)
        if p.mask is not None and p.mask.any():
            m = p.mask[ys, xs].astype(bool)
            gc[dilate(m, self.band_px)] = cv2.GC_PR_BGD
            gc[m] = cv2.GC_PR_FGD
            gc[erode(m, self.band_px)] = cv2.GC_FGD
            mode, rect = cv2.GC_INIT_WITH_MASK, None
        else:
            mode, rect = cv2.GC_INIT_WITH_RECT, (x - xs.start, y - ys.start, max(1, bw), max(1, bh))
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(0)  # GrabCut seeds its colour models with k-means: same input, same mask
        try:
            cv2.grabCut(
                cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                gc,
                rect,  # type: ignore[arg-type]  # stubs lack None
                bgd,
                fgd,
                self.iterations,
                mode,
            )
        except cv2.error:  # one colour on one side (flat region): nothing to re-decide
            return Segmentation(p.mask.astype(bool) if p.mask is not None else None, 0.5)
        out = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(out.astype(np.uint8))
        if n <= 1:
            return Segmentation(None, 0.0)
        biggest = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        full = np.zeros((h, w), bool)
        full[ys, xs] = cv2.morphologyEx(biggest.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)) > 0
        return Segmentation(full, 1.0)
