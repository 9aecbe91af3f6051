"""Single-image shadow detection for one given object: composite + object mask → its cast-shadow mask.

The default needs no weights. A cast shadow is ground that is darker than the same surface lit, by a
roughly constant ratio, and it touches the object where the object meets the ground. The rule:
estimate the lit surface around the object (object inpainted away, then a wide median so that a shadow
narrower than the window does not pull the estimate down), mark pixels whose luminance ratio to it is
below ``ratio`` and whose chromaticity is kept, and keep only the dark regions connected to the
object's base within a search radius proportional to the object's size.

Its confidence compares it with itself at a wider view (a median window three times as wide, half again the
search radius): a shadow larger than the window darkens the lit estimate and goes unseen at the rule's own
scale, but not at the wider one. Shadow-like ground the wider view finds and the rule left out is a shadow
it may have missed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from curation.core.config.masks import DetectorOptions
from curation.core.morphology import bbox_of
from stages.shadows import ShadowDetection

CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))  # odd: an even kernel shifts the mask
#: the wider view behind the confidence: median window and search radius times these
LOOSE_WINDOW, LOOSE_SEARCH = 3.0, 1.5
#: dark pixels left out count against the confidence only beyond this share of the object's area
MISSED_FLOOR = 0.05


def _odd(n: float, lo: int, hi: int) -> int:
    k = int(np.clip(n, lo, hi))
    return k if k % 2 else k + 1


@dataclass(frozen=True)
class RuleShadowDetector:
    """The hand-made rule described in the module docstring; parameters are fractions of the object size.

    The defaults were chosen by leave-one-photo-out over every annotated real instance
    (``python -m stages.shadows.tune``; figures in docs/layers.md).
    """

    ratio: float = 0.84  # a shadow pixel is at most this bright relative to the lit surface
    chroma_tol: float = 0.45  # max change of normalised rgb between shadow and lit surface
    search: float = 0.6  # search radius, in object heights
    base_band: float = 0.2  # the object's lowest fraction (of its height) counts as its base
    window: float = 0.8  # median window for the lit surface, in object sizes
    name: str = "rule"

    @classmethod
    def from_options(cls, opts: DetectorOptions) -> RuleShadowDetector:
        return cls(
            ratio=opts.ratio,
            chroma_tol=opts.chroma_tol,
            search=opts.search,
            base_band=opts.base_band,
            window=opts.window,
        )

    def detect(self, composite: np.ndarray, obj: np.ndarray) -> np.ndarray:
        return self._run(composite, obj, scored=False).mask

    def detect_scored(self, composite: np.ndarray, obj: np.ndarray) -> ShadowDetection:
        return self._run(composite, obj, scored=True)

    def _run(self, composite: np.ndarray, obj: np.ndarray, scored: bool) -> ShadowDetection:
        """Works on a crop around the object that holds the search radius and the median window: the
        answer is the same as on the whole image, at a cost that does not grow with the image."""
        obj = obj.astype(bool)
        box = bbox_of(obj)
        out = np.zeros_like(obj)
        if box is None:
            return ShadowDetection(out, 1.0)
        x, y, w, h = box
        size = max(h, w)
        radius, loose_radius = max(3, int(self.search * size)), max(3, int(self.search * LOOSE_SEARCH * size))
        k, loose_k = _odd(self.window * size, 9, 255), _odd(self.window * LOOSE_WINDOW * size, 9, 255)
        pad = (loose_radius + loose_k // 2 if scored else radius + k // 2) + 8
        ys = slice(max(0, y - pad), min(obj.shape[0], y + h + pad))
        xs = slice(max(0, x - pad), min(obj.shape[1], x + w + pad))
        c, o = composite[ys, xs], obj[ys, xs]
        filled = cv2.inpaint(c, cv2.dilate(o.astype(np.uint8), np.ones((5, 5), np.uint8)) * 255, 5, cv2.INPAINT_TELEA)
        found = self._touching_base(c, o, filled, k, radius)
        out[ys, xs] = found
        if not scored:
            return ShadowDetection(out, float("nan"))
        # what the rule finds with a wider view of the lit ground, and left out at its own scale
        loose = self._touching_base(c, o, filled, loose_k, loose_radius)
        missed = int((loose & ~cv2.dilate(found.astype(np.uint8), CROSS, iterations=2).astype(bool)).sum())
        floor = MISSED_FLOOR * o.sum()  # specks of dark ground are not a missed shadow
        return ShadowDetection(out, float(1.0 - missed / (missed + found.sum() + floor)))

    def _touching_base(
        self, composite: np.ndarray, obj: np.ndarray, filled: np.ndarray, k: int, radius: int
    ) -> np.ndarray:
        """Dark, colour-keeping pixels within ``radius`` of the object, in regions that touch its base;
        "dark" against the lit surface, a median of ``k`` px over the photo with the object filled in."""
        box = bbox_of(obj)
        assert box is not None, "_run passes a crop around a non-empty object"
        _, y, _, h = box
        rgb = composite.astype(np.float32) + 1.0
        lit = cv2.medianBlur(filled, k).astype(np.float32) + 1.0
        dark = rgb.mean(axis=2) < self.ratio * lit.mean(axis=2)
        chroma = np.abs(rgb / rgb.sum(2, keepdims=True) - lit / lit.sum(2, keepdims=True)).max(axis=2)
        # within radius of the object: a distance transform costs the same at any radius, a disc dilation grows
        # with its area
        reach = cv2.distanceTransform((~obj).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) <= radius
        cand = dark & (chroma < self.chroma_tol) & ~obj & reach
        cand = cv2.morphologyEx(cand.astype(np.uint8), cv2.MORPH_OPEN, CROSS)
        base = obj.copy()
        base[: y + int((1 - self.base_band) * h)] = False
        contact = cv2.dilate(base.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        _, labels = cv2.connectedComponents(cand)
        keep = np.unique(labels[contact & (labels > 0)])
        return np.isin(labels, keep[keep > 0]) & ~obj
